//! `cargo xtask setup`: installs the Debian/Ubuntu packages a fresh machine lacks.
//!
//! Runs first in `.ci/run`, so a new machine gets what the enabled feature groups need; when not
//! root it prints the exact `sudo` command instead of guessing.

use anyhow::{Result, bail};

use crate::command::Command;

/// A set of system packages that one area of the workspace needs.
struct PackageGroup {
    /// What needs the packages.
    name: &'static str,
    /// Whether CI needs them today. A disabled group documents what is coming without making
    /// every machine install it.
    enabled: bool,
    /// Debian package names.
    packages: &'static [&'static str],
}

/// Every group. A crate that needs system packages adds (or enables) its group here.
const GROUPS: &[PackageGroup] = &[
    // The core crates (buffers, clock, ports, dispatch, runtime, the facade) are pure Rust and
    // need no system package today.
    PackageGroup {
        name: "core tests",
        enabled: true,
        packages: &[],
    },
    // The video crate: a real X server for the display test (Xvfb), screenshots (ImageMagick's
    // `import`), key presses sent to the window (xdotool), the X libraries minifb loads at run
    // time, and a TTF for text overlays.
    PackageGroup {
        name: "video",
        enabled: true,
        packages: &[
            "xvfb",
            "xauth",
            "imagemagick",
            "fonts-dejavu-core",
            "libx11-6",
            "libxcursor1",
            "xdotool",
        ],
    },
    // The file crate (ffmpeg-next): bindgen needs clang, linking needs the libs; its tests
    // compare against the ffmpeg and ffprobe command-line tools.
    PackageGroup {
        name: "file",
        enabled: true,
        packages: &[
            "pkg-config",
            "clang",
            "libclang-dev",
            "libavcodec-dev",
            "libavformat-dev",
            "libavutil-dev",
            "libswscale-dev",
            "libavfilter-dev",
            "libavdevice-dev",
            "libswresample-dev",
            "ffmpeg",
        ],
    },
    // The network crates' real peers: GStreamer's RFC 4175 payloader/depayloader for the
    // ST 2110-20 interop tests, iproute2 for the network-namespace tests, and linuxptp's
    // ptp4l as the PTP master the PTP clock is tested against.
    PackageGroup {
        name: "net",
        enabled: true,
        packages: &[
            "gstreamer1.0-tools",
            "gstreamer1.0-plugins-base",
            "gstreamer1.0-plugins-good",
            "iproute2",
            "linuxptp",
        ],
    },
    // The audio crate: cpal's ALSA host (libasound2-dev to build), and for its device tests a
    // real sound server: PulseAudio with a null sink, reached through ALSA's pulse plugin, and
    // its recorder (parec). SoX is a peer for the resampler's benchmark.
    PackageGroup {
        name: "audio",
        enabled: true,
        packages: &[
            "libasound2-dev",
            "libasound2-plugins",
            "alsa-utils",
            "pulseaudio",
            "pulseaudio-utils",
            "sox",
        ],
    },
    // lavapipe, the software Vulkan driver the GPU tests run on where there is no GPU, and
    // the loaders wgpu opens at run time (Vulkan, EGL for its GL backend).
    PackageGroup {
        name: "gpu",
        enabled: true,
        packages: &[
            "mesa-vulkan-drivers",
            "libvulkan1",
            "libegl1",
            "libegl-mesa0",
            "libgl1-mesa-dri",
        ],
    },
    // Delivery to browsers (HLS, WebRTC, the control room): str0m's DTLS through the system
    // OpenSSL, and for the tests a real browser, Debian's Chromium driven by its ChromeDriver.
    // Node.js and npm (for hls.js) are the machine's own: Debian's npm package conflicts with
    // the Node.js these machines ship, so it is not installed from here.
    PackageGroup {
        name: "delivery",
        enabled: true,
        packages: &["libssl-dev", "chromium", "chromium-driver"],
    },
];

/// Packages from PyPI the tests use as peers: aiortc, an independent WebRTC stack that
/// receives our WHEP stream.
const PYTHON_PACKAGES: &[&str] = &["aiortc==1.16.*"];

/// Packages from npm the browser tests load into their pages, installed under
/// `target/web/node_modules` (see `streamlib_test_support::browser::web_module`).
const NPM_PACKAGES: &[&str] = &["hls.js@1.7.4"];

/// Installs what the enabled groups need and is missing, then the test peers from PyPI and npm,
/// then the Python package's build and test tools (maturin, numpy, pytest, pinned) in their
/// venv under the target folder (see `python.rs`).
pub fn run() -> Result<()> {
    system_packages()?;
    test_peers()?;
    crate::python::setup()
}

/// Installs the PyPI and npm packages the tests use, when they are missing.
fn test_peers() -> Result<()> {
    let have_aiortc = Command::new("python3")
        .args(["-c", "import aiortc"])
        .probe()?
        .is_some();
    if have_aiortc {
        println!("setup: python: aiortc is installed");
    } else {
        println!("setup: python: installing {}", PYTHON_PACKAGES.join(" "));
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(PYTHON_PACKAGES.iter().copied())
            .run()?;
    }
    let web = crate::workspace::root()?.join("target").join("web");
    if web
        .join("node_modules")
        .join("hls.js")
        .join("dist")
        .join("hls.min.js")
        .is_file()
    {
        println!(
            "setup: npm: {} installed in {}",
            NPM_PACKAGES.join(" "),
            web.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&web)?;
    println!(
        "setup: npm: installing {} in {}",
        NPM_PACKAGES.join(" "),
        web.display()
    );
    Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(web.display().to_string())
        .args(NPM_PACKAGES.iter().copied())
        .run()
}

/// Installs what the enabled groups need and is missing, or says what to run.
fn system_packages() -> Result<()> {
    for group in GROUPS {
        let state = if group.enabled { "enabled" } else { "disabled" };
        let packages = if group.packages.is_empty() {
            "no system packages".to_owned()
        } else {
            group.packages.join(" ")
        };
        println!("setup: {} ({state}): {packages}", group.name);
    }
    let wanted: Vec<&str> = GROUPS
        .iter()
        .filter(|group| group.enabled)
        .flat_map(|group| group.packages.iter().copied())
        .collect();
    if wanted.is_empty() {
        println!("setup: nothing to install: the enabled groups need no system package");
        return Ok(());
    }
    // Every Debian derivative has dpkg-query; its absence means another distribution.
    if Command::new("dpkg-query")
        .arg("--version")
        .probe()?
        .is_none()
    {
        println!(
            "setup: this is not a Debian-based system (no dpkg-query); install the equivalents \
             of these packages yourself: {}",
            wanted.join(" ")
        );
        return Ok(());
    }
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Status}\\n"])
        .args(wanted.iter().copied())
        .output_whatever_status()?;
    let missing = missing_packages(&wanted, &installed);
    if missing.is_empty() {
        println!("setup: all {} system packages are installed", wanted.len());
        return Ok(());
    }
    println!("setup: missing: {}", missing.join(" "));
    let install_args = ["install", "-y", "--no-install-recommends"];
    let uid = Command::new("id").arg("-u").output()?;
    if uid.trim() != "0" {
        bail!(
            "setup needs root to install packages; run:\n  sudo apt-get update && sudo \
             DEBIAN_FRONTEND=noninteractive apt-get {} {}",
            install_args.join(" "),
            missing.join(" ")
        );
    }
    Command::new("apt-get").arg("update").run()?;
    Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(install_args)
        .args(missing)
        .run()
}

/// The `wanted` packages that `dpkg-query -W -f '${Package} ${Status}\n'` output does not
/// report as installed. Unknown packages are simply absent from that output.
fn missing_packages<'a>(wanted: &[&'a str], dpkg_output: &str) -> Vec<&'a str> {
    let installed: Vec<&str> = dpkg_output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            // `${Status}` is "want error state"; only the state `installed` counts (not
            // `config-files` or `half-installed`). Multi-arch names carry `:arch`.
            (words.last() == Some("installed")).then(|| name.split(':').next().unwrap_or(name))
        })
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|package| !installed.contains(package))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fully_installed_packages_count() {
        let output = "\
xvfb install ok installed
xauth deinstall ok config-files
libvulkan1:amd64 install ok installed
imagemagick install ok half-installed
";
        assert_eq!(
            missing_packages(
                &[
                    "xvfb",
                    "xauth",
                    "libvulkan1",
                    "imagemagick",
                    "fonts-dejavu-core"
                ],
                output
            ),
            ["xauth", "imagemagick", "fonts-dejavu-core"]
        );
    }

    #[test]
    fn the_test_groups_are_enabled() {
        for name in ["core tests", "video", "file", "net", "gpu"] {
            assert!(
                GROUPS
                    .iter()
                    .any(|group| group.name == name && group.enabled),
                "{name}"
            );
        }
        assert!(
            GROUPS
                .iter()
                .any(|group| group.name == "gpu" && group.packages.contains(&"mesa-vulkan-drivers"))
        );
    }
}
