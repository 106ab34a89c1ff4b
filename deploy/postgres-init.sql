-- Prefect's own database beside the catalogue (compose.yaml mounts this into the postgres image).
CREATE DATABASE prefect OWNER archive;
