-- The plugin contract: a plugin's own remote fields (e.g. deb: distributions, components,
-- gpgkey), as a JSON object, like repositories.plugin_data and publications.plugin_data.
ALTER TABLE remotes ADD COLUMN plugin_data jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Signing services (pulpcore's SigningService): a script an administrator registers, called
-- with a file to sign; its key's public half and fingerprint are shown at signing-services/.
CREATE TABLE signing_services (
    id                 uuid PRIMARY KEY,
    pulp_type          text NOT NULL,
    name               text NOT NULL UNIQUE,
    script             text NOT NULL,
    pubkey_fingerprint text NOT NULL,
    public_key         text NOT NULL,
    pulp_created       timestamptz NOT NULL
);
