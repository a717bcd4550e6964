-- A version-1 MyCanvas catalogue (the first release schema) with a little data.
-- tests/test_project_store.py builds catalogue.sqlite from it to test the migration.
-- Its CREATE statements must stay identical to migration 1 in engine/project/schema.py.
PRAGMA user_version=1;
BEGIN TRANSACTION;
CREATE TABLE concepts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        token TEXT NOT NULL UNIQUE,
        class_word TEXT NOT NULL,
        created_at TEXT
    );
INSERT INTO "concepts" VALUES(1,'Mochi','<mochi>','cat','2026-01-05T10:01:00+00:00');
INSERT INTO "concepts" VALUES(2,'Blue mug','<blue-mug>','mug','2026-01-05T10:02:00+00:00');
CREATE TABLE dataset_items (
        id INTEGER PRIMARY KEY,
        layout_id INTEGER REFERENCES layouts(id) ON DELETE SET NULL,
        image_file TEXT NOT NULL,
        caption TEXT,
        masks_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT
    );
INSERT INTO "dataset_items" VALUES(1,1,'files/11/1111111111111111111111111111111111111111111111111111111111111111.png','a cat next to a blue mug on a kitchen table','{"1": "files/22/2222222222222222222222222222222222222222222222222222222222222222.png", "2": "files/33/3333333333333333333333333333333333333333333333333333333333333333.png"}','2026-01-05T10:06:00+00:00');
INSERT INTO "dataset_items" VALUES(2,2,'files/44/4444444444444444444444444444444444444444444444444444444444444444.png','a cat in a garden','{"1": "files/55/5555555555555555555555555555555555555555555555555555555555555555.png"}','2026-01-05T10:06:01+00:00');
CREATE TABLE layouts (
        id INTEGER PRIMARY KEY,
        scene TEXT,
        caption TEXT,
        objects_json TEXT NOT NULL DEFAULT '[]',
        source TEXT,
        seed INTEGER,
        created_at TEXT
    );
INSERT INTO "layouts" VALUES(1,'a sunny kitchen table','a cat next to a blue mug on a kitchen table','[{"concept_id": 1, "x": 0.1, "y": 0.3, "w": 0.4, "h": 0.5, "z": 0}, {"concept_id": 2, "x": 0.6, "y": 0.4, "w": 0.3, "h": 0.35, "z": 1}]','llm+solver',7,'2026-01-05T10:05:00+00:00');
INSERT INTO "layouts" VALUES(2,'a garden','a cat in a garden','[{"concept_id": 1, "x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "z": 0}]','solver',8,'2026-01-05T10:05:01+00:00');
CREATE TABLE masks (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        cutout_file TEXT,
        method TEXT,
        quality REAL,
        created_at TEXT
    );
INSERT INTO "masks" VALUES(1,1,1,'files/dd/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.png','files/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.png','sam',0.91,'2026-01-05T10:04:00+00:00');
INSERT INTO "masks" VALUES(2,3,2,'files/ff/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff.png',NULL,'sam',NULL,'2026-01-05T10:04:01+00:00');
CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT
    );
INSERT INTO "meta" VALUES('name','Mochi and the mug');
INSERT INTO "meta" VALUES('created_at','2026-01-05T10:00:00+00:00');
INSERT INTO "meta" VALUES('app_version','0.0.9');
CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        file TEXT NOT NULL,
        original_name TEXT,
        width INTEGER,
        height INTEGER,
        added_at TEXT,
        UNIQUE (concept_id, sha256)
    );
INSERT INTO "photos" VALUES(1,1,'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','files/aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jpg','IMG_0001.JPG',640,480,'2026-01-05T10:03:00+00:00');
INSERT INTO "photos" VALUES(2,1,'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','files/bb/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.png','mochi sofa.png',512,512,'2026-01-05T10:03:01+00:00');
INSERT INTO "photos" VALUES(3,2,'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc','files/cc/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.jpg','mug.jpg',800,600,'2026-01-05T10:03:02+00:00');
CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        created_at TEXT,
        finished_at TEXT,
        output_dir TEXT
    );
INSERT INTO "runs" VALUES(1,'custom-diffusion','{"steps": 500, "lr": 1e-05}','finished','2026-01-05T11:00:00+00:00','2026-01-05T12:00:00+00:00','runs/0001');
INSERT INTO "runs" VALUES(2,'em-extract','{"rounds": 3}','failed','2026-01-06T09:00:00+00:00','2026-01-06T09:10:00+00:00','runs/0002');
CREATE INDEX masks_photo ON masks(photo_id);
CREATE INDEX masks_concept ON masks(concept_id);
CREATE INDEX dataset_items_layout ON dataset_items(layout_id);
COMMIT;
