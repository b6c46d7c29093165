//! `cargo xtask new service NAME [--rest] [--port N]`: a new REST service over MySQL, written
//! from `xtask/templates/service/` and registered everywhere a service belongs.
//!
//! Each place that lists the services carries an anchor line (`new-service: <place>` in a
//! comment); the service's entry is written just above it, indented like it. A missing anchor
//! is an error before anything is written, so a scaffold is whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Where the service's own files come from, relative to the checkout.
const TEMPLATES: &str = "xtask/templates/service";

/// A service to write: its name in the forms the templates use, and its HTTP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blueprint {
    /// `catalog`: crate suffix, database prefix, folder, Kubernetes name.
    pub name: String,
    /// HTTP port.
    pub port: u16,
}

impl Blueprint {
    /// `template` with `{{name}}`, `{{Name}}`, `{{NAME}}` and `{{port}}` filled in.
    pub fn render(&self, template: &str) -> String {
        let mut pascal = self.name.clone();
        if let Some(first) = pascal.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        template
            .replace("{{name}}", &self.name)
            .replace("{{Name}}", &pascal)
            .replace("{{NAME}}", &self.name.to_ascii_uppercase())
            .replace("{{port}}", &self.port.to_string())
    }
}

/// One place that lists the services: the file, its anchor, and the service's entry there.
struct Registration {
    file: &'static str,
    anchor: &'static str,
    entry: &'static str,
}

const fn at(file: &'static str, anchor: &'static str, entry: &'static str) -> Registration {
    Registration {
        file,
        anchor,
        entry,
    }
}

const STACK: &str = "platform/src/lib.rs";
const POLICIES: &str = "deploy/k8s/components/network-policies/policies.yaml";
const PRODUCTION: &str = "deploy/k8s/overlays/production/kustomization.yaml";

/// Every place a service is registered. Entries are written at the anchor's indentation.
const REGISTRATIONS: &[Registration] = &[
    at("Cargo.toml", "member", "\"services/{{name}}\",\n"),
    at(
        "Cargo.toml",
        "dependency",
        "shopmesh-{{name}} = { path = \"services/{{name}}\" }\n",
    ),
    at("openapi/Cargo.toml", "feature", "{{name}} = []\n"),
    at(
        "tests/e2e/Cargo.toml",
        "e2e dependency",
        "shopmesh-{{name}}.workspace = true\n",
    ),
    at(
        "tests/e2e/src/deployment.rs",
        "e2e config",
        "\"{{name}}\" => vec![\n    shopmesh_{{name}}::config::{{Name}}Config::from_env(&env)\n        .unwrap()\n        .port,\n],\n",
    ),
    at(STACK, "variant", "/// {{name}} (REST, MySQL).\n{{Name}},\n"),
    at(STACK, "start order", "Service::{{Name}},\n"),
    at(STACK, "name", "Self::{{Name}} => \"{{name}}\",\n"),
    at(
        STACK,
        "package",
        "Self::{{Name}} => \"shopmesh-{{name}}\",\n",
    ),
    at(
        STACK,
        "port field",
        "/// {{name}} HTTP (`PORT`).\npub {{name}}: u16,\n",
    ),
    at(STACK, "default port", "{{name}}: {{port}},\n"),
    at(STACK, "assigned port", "{{name}}: next()?,\n"),
    at(STACK, "http port", "Service::{{Name}} => self.{{name}},\n"),
    at(
        STACK,
        "database field",
        "/// MySQL database of {{name}}.\npub {{name}}_db: String,\n",
    ),
    at(
        STACK,
        "default database",
        "{{name}}_db: \"{{name}}_db\".into(),\n",
    ),
    at(
        STACK,
        "prefixed database",
        "{{name}}_db: format!(\"{p}_{{name}}_db\"),\n",
    ),
    at(
        STACK,
        "database",
        "Service::{{Name}} => Some(&self.{{name}}_db),\n",
    ),
    at(
        STACK,
        "declared environment",
        "Service::{{Name}} => vec![\n    (\"PORT\", self.ports.{{name}}.to_string()),\n    jwks.clone(),\n],\n",
    ),
    at(
        "docker-compose.yml",
        "compose service",
        include_str!("../templates/registrations/compose.yml"),
    ),
    at(
        "docker/mysql/init.sql",
        "database",
        "CREATE DATABASE IF NOT EXISTS {{name}}_db;\nGRANT ALL PRIVILEGES ON {{name}}_db.* TO 'shopmesh'@'%';\n",
    ),
    at(
        "deploy/k8s/overlays/dev/infrastructure.yaml",
        "database",
        "CREATE DATABASE IF NOT EXISTS {{name}}_db;\nGRANT ALL PRIVILEGES ON {{name}}_db.* TO 'shopmesh'@'%';\n",
    ),
    at(
        "deploy/k8s/overlays/dev/kustomization.yaml",
        "secrets",
        "- name: {{name}}-secrets\n  literals:\n    - DB_USER=shopmesh\n    - DB_PASSWORD=shopmesh\n",
    ),
    at(
        "deploy/k8s/base/kustomization.yaml",
        "resource",
        "- {{name}}.yaml\n",
    ),
    at(
        "deploy/k8s/base/kustomization.yaml",
        "image",
        "- name: shopmesh/{{name}}\n  newTag: dev\n",
    ),
    at(
        PRODUCTION,
        "image",
        "- name: shopmesh/{{name}}\n  newName: registry.example.com/shopmesh/{{name}}\n  newTag: \"0.1.0\"\n",
    ),
    at(PRODUCTION, "replicas", "- name: {{name}}\n  count: 2\n"),
    at(
        "deploy/k8s/overlays/production/autoscaling.yaml",
        "autoscaler",
        include_str!("../templates/registrations/autoscaler.yaml"),
    ),
    at(
        "deploy/k8s/overlays/production/disruption-budgets.yaml",
        "disruption budget",
        "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {{name}}\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {{name}}\n",
    ),
    at(
        POLICIES,
        "reaches users",
        "- podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {{name}}\n",
    ),
    at(
        POLICIES,
        "reaches mysql",
        "- podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {{name}}\n",
    ),
    at(
        POLICIES,
        "policy",
        include_str!("../templates/registrations/policy.yaml"),
    ),
    at(
        "deploy/prometheus/prometheus.yml",
        "scrape job",
        "- job_name: {{name}}\n  static_configs:\n    - targets: [\"{{name}}:{{port}}\"]\n",
    ),
    at(
        ".env.example",
        "settings",
        "# --- {{name}} (:{{port}}) ---------------------------------------------------------------\n# PORT={{port}}; its database is {{name}}_db (DB_NAME; xtask up and docker-compose set it).\n\n",
    ),
    at(
        "README.md",
        "services table",
        "| {{name}} | {{port}} | REST | MySQL `{{name}}_db` (sqlx migrations) |\n",
    ),
];

/// `cargo xtask new service NAME [--rest] [--port N]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask new service NAME [--rest] [--port N]";
    let [kind, name, flags @ ..] = args else {
        bail!("{usage}");
    };
    if kind != "service" {
        bail!("{usage}");
    }
    let mut port = None;
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--rest" => {}
            "--grpc" => bail!(
                "--grpc is not built yet: scaffold with --rest and add the proto contract by hand (see the notifications service)"
            ),
            "--port" => {
                let value = flags.next().context("--port needs a number")?;
                port = Some(value.parse().context("--port needs a number")?);
            }
            other => bail!("unknown flag {other:?}; {usage}"),
        }
    }
    let blueprint = Blueprint {
        name: valid_name(name)?,
        port: match port {
            Some(p) => p,
            None => next_port(root)?,
        },
    };
    let written = scaffold(root, &blueprint)?;
    for path in &written {
        println!("new: wrote {}", path.display());
    }
    println!(
        "new: service {} on :{} registered in {} places; next: cargo test -p shopmesh-{}",
        blueprint.name,
        blueprint.port,
        REGISTRATIONS.len(),
        blueprint.name
    );
    Ok(())
}

/// A name usable as a crate suffix, a Rust field, a database and a Kubernetes name.
fn valid_name(name: &str) -> Result<String> {
    let ok = name.len() <= 30
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!(
            "a service name is 1 to 30 lowercase letters and digits, starting with a letter; got {name:?}"
        );
    }
    Ok(name.to_owned())
}

/// One above the highest HTTP port a Kubernetes base manifest declares.
fn next_port(root: &Path) -> Result<u16> {
    let dir = root.join("deploy/k8s/base");
    let mut highest = 3000;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            let line = line.trim();
            let value = line
                .strip_prefix("PORT: ")
                .or_else(|| line.strip_prefix("HTTP_PORT: "));
            if let Some(port) = value.and_then(|v| v.trim_matches('"').parse::<u16>().ok()) {
                highest = highest.max(port);
            }
        }
    }
    Ok(highest + 1)
}

/// Writes the service's files and registers it; returns what it wrote. Refuses, writing
/// nothing, when the service exists or a registration's anchor is missing.
pub fn scaffold(root: &Path, blueprint: &Blueprint) -> Result<Vec<PathBuf>> {
    let crate_dir = root.join("services").join(&blueprint.name);
    if crate_dir.exists() {
        bail!("{} exists already", crate_dir.display());
    }
    let mut edits: Vec<(PathBuf, String)> = Vec::new();
    for registration in REGISTRATIONS {
        let path = root.join(registration.file);
        let current = match edits.iter().position(|(p, _)| *p == path) {
            Some(i) => edits.remove(i).1,
            None => std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        };
        let entry = blueprint.render(registration.entry);
        let edited = register(&current, registration.anchor, &entry)
            .with_context(|| format!("registering in {}", registration.file))?;
        edits.push((path, edited));
    }
    let templates = root.join(TEMPLATES);
    let mut files = Vec::new();
    collect(&templates, &templates, &mut files)?;
    let mut written = Vec::new();
    for relative in files {
        let template = std::fs::read_to_string(templates.join(&relative))?;
        let target = root.join(blueprint.render(&relative.to_string_lossy()));
        if target.exists() {
            bail!("{} exists already", target.display());
        }
        edits.push((target, blueprint.render(&template)));
    }
    for (path, text) in edits {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
    }
    Ok(written)
}

/// `text` with `entry` written above the line holding `new-service: {anchor}`, each non-empty
/// line indented as that line is.
fn register(text: &str, anchor: &str, entry: &str) -> Result<String> {
    let marker = format!("new-service: {anchor}");
    let line = text
        .lines()
        .find(|l| {
            l.trim_start()
                .trim_start_matches(['#', '/', '-', '<', '!', ' '])
                .trim_end_matches(['-', '>', ' '])
                == marker
        })
        .with_context(|| format!("no anchor line \"{marker}\""))?;
    let indent = &line[..line.len() - line.trim_start().len()];
    let mut block = String::new();
    for l in entry.lines() {
        if !l.is_empty() {
            block.push_str(indent);
            block.push_str(l);
        }
        block.push('\n');
    }
    let at = text.find(line).context("anchor line")?;
    Ok(format!("{}{block}{}", &text[..at], &text[at..]))
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(base, &path, out)?;
        } else {
            out.push(path.strip_prefix(base)?.to_owned());
        }
    }
    out.sort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_goes_above_its_anchor_at_its_indentation() {
        let text = "a:\n  - x\n  # new-service: item\nb: 1\n";
        let out = register(text, "item", "- {{name}}\n").unwrap();
        let bp = Blueprint {
            name: "catalog".into(),
            port: 3004,
        };
        assert_eq!(
            bp.render(&out),
            "a:\n  - x\n  - catalog\n  # new-service: item\nb: 1\n"
        );
    }

    #[test]
    fn a_missing_anchor_is_an_error() {
        assert!(register("a: 1\n", "item", "x\n").is_err());
    }

    #[test]
    fn names_that_cannot_be_every_kind_of_identifier_are_refused() {
        for bad in ["Catalog", "9lives", "pay-ments", "", "a_b"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
        assert!(valid_name("payments2").is_ok());
    }

    #[test]
    fn every_anchor_is_in_the_checkout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for r in REGISTRATIONS {
            let text = std::fs::read_to_string(root.join(r.file)).unwrap();
            register(&text, r.anchor, r.entry).unwrap_or_else(|e| panic!("{}: {e:#}", r.file));
        }
    }
}
