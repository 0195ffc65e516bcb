//! The S2I builder test images (scripts/builder-images.sh) pushed to a test registry.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::registry::Registry;
use super::tools::repo_root;

/// References (`host/repo@sha256:...`) of the two builder images in one registry.
#[derive(Clone, Debug)]
pub struct BuilderImages {
    /// sclorg style: USER 1001, scripts in /usr/libexec/s2i, app in /opt/app-root/src.
    pub sclorg: String,
    /// Daeploy style: root, scripts in /.s2i/bin, app in /app_root.
    pub daeploy: String,
}

/// Pushes both builder images to `registry`. The first call on a machine builds the Debian
/// root filesystem (minutes); later calls reuse the cached layers and only push.
pub fn push_builder_images(registry: &Registry) -> BuilderImages {
    let output = Command::new(repo_root().join("scripts/builder-images.sh"))
        .arg(registry.host())
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/builder-images.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/builder-images.sh {} failed:\n{}{stdout}",
        registry.host(),
        String::from_utf8_lossy(&output.stderr)
    );
    let image = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} line in builder-images.sh output:\n{stdout}"))
            .to_string()
    };
    BuilderImages {
        sclorg: image("python-sclorg"),
        daeploy: image("python-daeploy"),
    }
}
