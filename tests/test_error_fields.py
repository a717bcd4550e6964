"""Errors carry structured fields (what is wrong, the hint, the command, the missing model role)
beside their message; the CLI's message is unchanged, and the fields cross the worker process
boundary in JobFailed, so the window reads them instead of parsing the prose."""

from __future__ import annotations

import pickle

from engine.errors import ErrorFields, InputError, ModelMissingError, MyCanvasError
from engine.jobs import JobFailed, register_job, run_inline
from engine.jobs.worker import JobRunner
from engine.models.profiles import get_profile, missing_fields, missing_message

register_job("test-missing-model", "jobs_for_tests:missing_model_job")

EXPECTED = ErrorFields(
    hint="download it when connected to the internet, or choose the folder on this computer "
         "that holds it",
    command="mycanvas models download sd15", missing_role="base",
    problem=missing_message(get_profile("sd15"), get_profile("sd15").role("base"),
                            "no connection").split(" Run `")[0],
    cause="no connection")


def test_the_message_is_the_cli_one_and_the_fields_say_what_to_act_on():
    profile = get_profile("sd15")
    spec = profile.role("base")
    error = ModelMissingError(missing_message(profile, spec), **missing_fields(profile, spec))
    assert str(error) == (
        f"The 'base' model of profile 'sd15' ({spec.repo}) is not on this computer. Run "
        "`mycanvas models download sd15` while connected to the internet, or set a local "
        "folder for it in Settings → Models.")
    assert error.fields.missing_role == "base"
    assert error.fields.command == "mycanvas models download sd15"
    assert error.fields.problem == f"The 'base' model of profile 'sd15' ({spec.repo}) is not " \
                                   "on this computer."
    assert InputError("plain").fields == ErrorFields()


def test_the_fields_survive_pickling():
    error = ModelMissingError("gone", hint="h", command="c", missing_role="vae", problem="p")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ModelMissingError and str(back) == "gone"
    assert back.fields == ErrorFields("h", "c", "vae", "p")
    assert pickle.loads(pickle.dumps(MyCanvasError("a", "b"))).args == ("a", "b")


def test_a_failed_job_carries_the_fields_inline_and_from_the_worker_process():
    inline = run_inline("test-missing-model")
    assert isinstance(inline, JobFailed) and inline.fields == EXPECTED
    assert inline.reason.startswith(EXPECTED.problem) and "Run `mycanvas" in inline.reason
    runner = JobRunner()
    try:
        end = runner.submit("test-missing-model").wait(120)
    finally:
        runner.shutdown()
    assert isinstance(end, JobFailed), end
    assert end.fields == EXPECTED and end.reason == inline.reason
