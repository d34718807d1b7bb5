-- The plugin contract: a plugin's own remote fields (e.g. deb: distributions, components,
-- gpgkey), as a JSON object, like repositories.plugin_data and publications.plugin_data.
ALTER TABLE remotes ADD COLUMN plugin_data TEXT NOT NULL DEFAULT '{}';

-- Signing services (pulpcore's SigningService): a script an administrator registers, called
-- with a file to sign; its key's public half and fingerprint are shown at signing-services/.
CREATE TABLE signing_services (
    id                 TEXT PRIMARY KEY NOT NULL,
    pulp_type          TEXT NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    script             TEXT NOT NULL,
    pubkey_fingerprint TEXT NOT NULL,
    public_key         TEXT NOT NULL,
    pulp_created       INTEGER NOT NULL
);
