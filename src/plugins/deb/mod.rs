//! The Debian plugin (pulp_deb's format): APT repositories synced level by level.
//!
//! - [`deb822`]: the control-data format (stanzas of fields), parsed whole or streamed.
//! - [`release`]: Release / InRelease files (suite, components, architectures, SHA256 list).
//! - [`verify`]: OpenPGP checks of Release files with the remote's `gpgkey`.
//! - [`compression`]: `.xz` / `.gz` indices as a stream of uncompressed bytes.
//! - [`content`]: the seven `deb.*` content types, their data and keys, and
//!   [`content::content_types`] for the REST side.
//! - [`first_stage`]: [`DebFirstStage`], which fetches Release files, then indices, then
//!   declares packages and their component memberships, awaiting units in a bounded window;
//!   configured by [`DebRemoteOptions`].
//! - [`error`]: [`DebError`], the plugin's one error type.
//!
//! [`DebPlugin`] ties them to the [`Plugin`] contract. Publishing (verbatim and APT) is not
//! here yet.

pub mod compression;
pub mod content;
pub mod deb822;
pub mod error;
pub mod first_stage;
pub mod release;
pub mod verify;

pub use error::DebError;
pub use first_stage::{DebFirstStage, DebRemoteOptions};

use crate::plugins::{ApiNames, ModelNames, Plugin, SyncEnv};
use crate::stages::Stage;

/// The `pulp_type` of Debian repositories and remotes (pulp_deb's `deb.deb` / `deb.apt-remote`
/// are the REST names; the core keys remotes and repositories by this one).
pub const DEB_TYPE: &str = "deb.deb";

/// The Debian plugin. Until the core hands plugin remote fields and sync options to
/// [`Plugin::first_stage`], the sync configuration is given when the plugin is made
/// ([`DebPlugin::with_options`]).
#[derive(Debug, Clone, Default)]
pub struct DebPlugin {
    /// The remote's Debian fields (a [`DebRemoteOptions`] as JSON).
    options: serde_json::Value,
    optimize: bool,
}

impl DebPlugin {
    /// A plugin that syncs with these remote options (JSON of [`DebRemoteOptions`]) and
    /// the sync's `optimize` flag.
    pub fn with_options(options: serde_json::Value, optimize: bool) -> DebPlugin {
        DebPlugin { options, optimize }
    }
}

impl Plugin for DebPlugin {
    fn name(&self) -> &'static str {
        "deb"
    }

    fn repository_type(&self) -> &'static str {
        DEB_TYPE
    }

    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage> {
        Box::new(DebFirstStage::from_json(
            env.clone(),
            &self.options,
            self.optimize,
        ))
    }

    fn api_names(&self) -> ApiNames {
        ApiNames {
            app_label: "deb",
            kind: "apt",
            content_kind: "packages",
        }
    }

    fn model_names(&self) -> ModelNames {
        ModelNames {
            remote: "AptRemote",
            repository: "AptRepository",
            content: "Package",
        }
    }

    fn content_type(&self) -> &'static str {
        content::PACKAGE
    }
}
