//! Lint of what deploys the platform: the Kubernetes overlays rendered with `kubectl kustomize`
//! and validated offline against the Kubernetes API schemas (kubernetes-validate, strict: an
//! unknown or misspelt field fails), and the Prometheus configuration, alert rules and their
//! unit tests checked with `promtool`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{run, tools};

/// The overlays, each rendered and validated.
const OVERLAYS: [&str; 2] = ["dev", "production"];

pub fn lint(root: &Path) -> Result<()> {
    let out_dir = root.join("target/xtask/k8s");
    std::fs::create_dir_all(&out_dir)?;
    let validate = tools::kubernetes_validate(root)?;
    let mut rendered = Vec::new();
    for overlay in OVERLAYS {
        let dir = root.join("deploy/k8s/overlays").join(overlay);
        rendered.push((
            overlay.to_owned(),
            render(&dir, &out_dir.join(format!("{overlay}.yaml")))?,
        ));
    }
    // Production with the optional KEDA component: it must render too (KEDA's kinds have no
    // schema here, so only the built-in kinds in it are validated).
    // Kustomize takes only relative paths: this folder is target/xtask/k8s/production-keda.
    let keda = out_dir.join("production-keda");
    std::fs::create_dir_all(&keda)?;
    std::fs::write(
        keda.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../../../deploy/k8s/overlays/production\ncomponents:\n  - ../../../../deploy/k8s/components/keda\n",
    )?;
    rendered.push((
        "production + components/keda".to_owned(),
        render(&keda, &out_dir.join("production-keda.yaml"))?,
    ));
    for (name, file) in &rendered {
        println!("lint: kubernetes-validate --strict ({name})");
        run(Command::new(&validate)
            .args(["--strict", "--quiet", "--no-warn"])
            .arg(file))?;
    }

    let bin = tools::prometheus()?;
    let prometheus = root.join("deploy/prometheus");
    println!("lint: promtool check config, check rules, test rules");
    run(Command::new(bin.join("promtool"))
        .args(["check", "config"])
        .arg(prometheus.join("prometheus.yml")))?;
    run(Command::new(bin.join("promtool"))
        .args(["check", "rules"])
        .arg(prometheus.join("alerts.yml")))?;
    run(Command::new(bin.join("promtool"))
        .args(["test", "rules"])
        .arg(prometheus.join("alerts.test.yml")))?;
    Ok(())
}

/// `kubectl kustomize dir` into `file`.
fn render(dir: &Path, file: &Path) -> Result<std::path::PathBuf> {
    println!("lint: kubectl kustomize {}", dir.display());
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .context("rendering the Kubernetes manifests needs kubectl (with Kustomize)")?;
    if !out.status.success() {
        bail!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(file, &out.stdout)?;
    Ok(file.to_owned())
}
