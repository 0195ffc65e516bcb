//! The Source-to-Image rules (s2i v1.6.3 semantics, see `shared/reference/s2i.md`): the
//! `.s2i/environment` file, where the assemble and run scripts come from, the build context
//! layout and the generated Dockerfile. Everything here is pure or touches only the directories
//! it is handed, so `prepare` and offline tools share one implementation.

pub mod context;
pub mod dockerfile;
pub mod environment;
pub mod ignore;
pub mod pack;
pub mod scripts;

use std::sync::LazyLock;

use regex::Regex;

use crate::api;

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this crate, exercised by the unit tests: failing here is a
    // programming error, not an input error.
    Regex::new(pattern).expect("built-in pattern compiles")
}

pub(crate) static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| compile(api::ENV_NAME_PATTERN));
pub(crate) static IMAGE_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| compile(api::IMAGE_REFERENCE_PATTERN));
pub(crate) static LABEL_KEY: LazyLock<Regex> = LazyLock::new(|| compile(api::LABEL_KEY_PATTERN));
pub(crate) static USER: LazyLock<Regex> = LazyLock::new(|| compile(api::USER_PATTERN));

/// Whether `name` is a valid environment variable name (`api::ENV_NAME_PATTERN`).
pub fn is_valid_env_name(name: &str) -> bool {
    ENV_NAME.is_match(name)
}
