//! `deploy/`: the Kubernetes manifests are validated against Kubernetes' OpenAPI schemas
//! (`kubernetes-validate` from PyPI, which ships them, run offline as a subprocess), the
//! Compose file against the Compose specification's JSON schema (vendored in
//! `deploy/compose-spec.schema.json`), and their wiring is checked: every variable
//! `src/config.rs` reads reaches the containers, secrets come from the Secret, probes, grace
//! periods, the services of the Compose stack. A broken manifest is shown to fail.
//!
//! Needs Python 3 with `kubernetes-validate` (which brings PyYAML and jsonschema); `.ci/run`
//! installs it. Without it these tests fail, saying how to install it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use easel::config::{Config, Environment, MediaStoreConfig};
use serde_json::Value;

/// The validator, pinned (also in `.ci/run`).
const INSTALL: &str = "python3 -m pip install 'kubernetes-validate==1.37.0'";

/// Kubernetes versions the manifests must be valid for: an older one still common in
/// managed clusters, and the newest the validator ships.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// Variables `src/config.rs` reads that the Kubernetes ConfigMap and Secret leave out on
/// purpose, each with the reason.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "EASEL_PG_BIN_DIR",
        "the embedded PostgreSQL only (development); containers always set DATABASE_URL",
    ),
    (
        "EASEL_PG_USER",
        "the embedded PostgreSQL only (development); containers always set DATABASE_URL",
    ),
    (
        "EASEL_ALLOW_SANDBOX_IN_PRODUCTION",
        "must stay unset in production: with it anyone with a checkout link mints credits",
    ),
];

/// Names that hold secrets (as this project names them: keys, secrets, passwords, bearer
/// tokens, the database URL with its password): the Secret's, never the ConfigMap's.
fn is_secret(name: &str) -> bool {
    // Database URLs carry the password.
    name.starts_with("DATABASE_")
        || name.ends_with("_TOKEN")
        || ["SECRET", "API_KEY", "ACCESS_KEY", "PASSWORD"]
            .iter()
            .any(|s| name.contains(s))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubernetes_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// The manifests: every `.yaml`/`.yml` file of `deploy/kubernetes/`.
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kubernetes_dir())
        .expect("deploy/kubernetes/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "deploy/kubernetes/ has {files:?}");
    files
}

/// Runs `python3 args...`, panicking with how to install the validator when Python or the
/// validator's modules are missing (never a silent skip).
fn python(args: &[&str]) -> std::process::Output {
    let output = Command::new("python3").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): the deploy checks need Python 3 with kubernetes-validate: {INSTALL}")
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named") {
        panic!(
            "the deploy checks need kubernetes-validate (and the PyYAML and jsonschema it brings): {INSTALL}\n{stderr}"
        );
    }
    output
}

/// `kubernetes-validate --strict` (unknown fields are errors) on `files`, for every version in
/// [`KUBERNETES_VERSIONS`]: whether all passed, and what it printed.
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let mut ok = true;
    let mut report = String::new();
    for version in KUBERNETES_VERSIONS {
        let mut args = vec![
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "-k",
            version,
        ];
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let output = python(&args);
        ok &= output.status.success();
        report.push_str(&String::from_utf8_lossy(&output.stdout));
        report.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    (ok, report)
}

const YAML_TO_JSON: &str = r#"
import json, sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
json.dump(docs, sys.stdout)
"#;

/// The YAML documents of a file, as JSON (through PyYAML, which kubernetes-validate brings).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let output = python(&["-c", YAML_TO_JSON, &path.display().to_string()]);
    assert!(
        output.status.success(),
        "{} is not YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const COMPOSE_SCHEMA_CHECK: &str = r#"
import json, sys, yaml, jsonschema
with open(sys.argv[1]) as f:
    schema = json.load(f)
with open(sys.argv[2]) as f:
    compose = yaml.safe_load(f)
# The vendored schema is draft 2019-09 (its $schema URI is spelled in a way jsonschema does
# not look up, so the draft is named here).
validator = jsonschema.Draft201909Validator(schema)
errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(str(p) for p in e.absolute_path) or "(top)", ":", e.message[:300])
sys.exit(1 if errors else 0)
"#;

/// Validates a Compose file against `deploy/compose-spec.schema.json`: the errors found.
fn compose_schema_errors(path: &Path) -> Result<(), String> {
    let schema = root().join("deploy/compose-spec.schema.json");
    let output = python(&[
        "-c",
        COMPOSE_SCHEMA_CHECK,
        &schema.display().to_string(),
        &path.display().to_string(),
    ]);
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Every variable `src/config.rs` reads (its quoted `EASEL_*` names and `DATABASE_URL`,
/// outside its unit tests).
fn config_variables() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("src/config.rs")).unwrap();
    let code = source.split("#[cfg(test)]").next().unwrap();
    let mut names = BTreeSet::new();
    for prefix in ["\"EASEL_", "\"DATABASE_"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap();
            if rest[end..].starts_with('"') {
                names.insert(rest[..end].to_string());
            }
        }
    }
    assert!(
        names.len() > 80 && names.contains("EASEL_S3_BUCKET") && names.contains("DATABASE_URL"),
        "reading src/config.rs found {names:?}"
    );
    names
}

/// All documents of all manifests.
fn kubernetes_objects() -> Vec<Value> {
    manifests().iter().flat_map(|f| yaml_documents(f)).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes/"))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not a map: {value}"))
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{k} is not a string: {v}"));
            (k.clone(), v.to_string())
        })
        .collect()
}

/// The ConfigMap's data and the Secret's values (stringData, or data decoded).
fn config_and_secret(objects: &[Value]) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let config = string_map(&find(objects, "ConfigMap", "easel-config")["data"]);
    let secret = find(objects, "Secret", "easel-secrets");
    assert!(
        secret.get("data").is_none(),
        "the Secret's template uses stringData only"
    );
    (config, string_map(&secret["stringData"]))
}

/// The first container of a workload's pod template.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

/// The environment a container of this workload sees: ConfigMap, then Secret (envFrom),
/// then its own `env`; the Secret's placeholders (empty or `REPLACE_ME`) filled in as an
/// operator would.
fn container_environment(
    workload: &Value,
    config: &BTreeMap<String, String>,
    secret: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let c = container(workload);
    let from: Vec<(&str, &str)> = c["envFrom"]
        .as_array()
        .expect("envFrom")
        .iter()
        .map(|e| {
            if let Some(name) = e["configMapRef"]["name"].as_str() {
                ("configMap", name)
            } else {
                ("secret", e["secretRef"]["name"].as_str().unwrap())
            }
        })
        .collect();
    assert_eq!(
        from,
        [("configMap", "easel-config"), ("secret", "easel-secrets")],
        "{}: envFrom the ConfigMap and the Secret",
        workload["metadata"]["name"]
    );
    let mut env = config.clone();
    for (k, v) in secret {
        let filled = if v.is_empty() || v.contains("REPLACE_ME") {
            match k.as_str() {
                "DATABASE_URL" => "postgres://easel:pw@db.internal:5432/easel".to_string(),
                "EASEL_JWT_PREVIOUS_SECRETS" | "EASEL_SANDBOX_WEBHOOK_SECRET" => String::new(),
                _ => "x".repeat(48),
            }
        } else {
            v.clone()
        };
        env.insert(k.clone(), filled);
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        assert_ne!(name, "DATABASE_URL", "DATABASE_URL comes from the Secret");
        assert!(
            !is_secret(name) || e.get("value").is_none(),
            "{name} is a secret: not a literal value in a Deployment"
        );
        if let Some(v) = e["value"].as_str() {
            env.insert(name.to_string(), v.to_string());
        }
    }
    env
}

fn parse_config(env: &BTreeMap<String, String>) -> Config {
    Config::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("the configuration does not start: {e:#}"))
}

#[test]
fn deploy_kubernetes_manifests_match_the_kubernetes_schemas() {
    let (ok, report) = kubernetes_validate(&manifests());
    assert!(ok, "deploy/kubernetes/ does not validate:\n{report}");
}

#[test]
fn deploy_a_broken_manifest_is_rejected() {
    let dir = std::env::temp_dir().join(format!("easel-deploy-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let api = std::fs::read_to_string(kubernetes_dir().join("20-api.yaml")).unwrap();
    let cases = [
        // A number written as a string.
        ("containerPort: 8080", "containerPort: \"8080\""),
        // A misspelt field (strict validation: unknown fields are errors).
        (
            "terminationGracePeriodSeconds: 45",
            "terminationGracePeriodSecond: 45",
        ),
        // A required field missing: a Deployment without its selector.
        (
            "  selector:\n    matchLabels:",
            "  selectr:\n    matchLabels:",
        ),
    ];
    for (i, (from, to)) in cases.iter().enumerate() {
        assert!(api.contains(from), "20-api.yaml has no `{from}`");
        let broken = dir.join(format!("broken-{i}.yaml"));
        std::fs::write(&broken, api.replacen(from, to, 1)).unwrap();
        let (ok, report) = kubernetes_validate(std::slice::from_ref(&broken));
        assert!(!ok, "`{to}` was accepted:\n{report}");
        assert!(
            report.contains("did not validate"),
            "`{to}`: the validator's report: {report}"
        );
    }
    // The original of those, copied to the same place, passes: the failures are the edits'.
    let intact = dir.join("intact.yaml");
    std::fs::write(&intact, &api).unwrap();
    let (ok, report) = kubernetes_validate(std::slice::from_ref(&intact));
    assert!(ok, "{report}");

    let compose = std::fs::read_to_string(root().join("deploy/compose.yaml")).unwrap();
    for (from, to) in [
        (
            "condition: service_completed_successfully",
            "condition: service_finished",
        ),
        ("stop_grace_period: 45s", "stop_grace_periods: 45s"),
        ("replicas: 2", "replicas: two"),
    ] {
        assert!(compose.contains(from), "compose.yaml has no `{from}`");
        let broken = dir.join("compose.yaml");
        std::fs::write(&broken, compose.replacen(from, to, 1)).unwrap();
        assert!(
            compose_schema_errors(&broken).is_err(),
            "the Compose schema accepted `{to}`"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deploy_every_setting_reaches_the_kubernetes_containers() {
    let objects = kubernetes_objects();
    let (config, secret) = config_and_secret(&objects);
    let read = config_variables();
    let left_out: BTreeSet<String> = LEFT_OUT.iter().map(|(n, _)| n.to_string()).collect();
    for name in &read {
        let places = [
            config.contains_key(name),
            secret.contains_key(name),
            left_out.contains(name),
        ];
        assert_eq!(
            places.iter().filter(|p| **p).count(),
            1,
            "{name} must be in exactly one of the ConfigMap, the Secret, or LEFT_OUT (in: {places:?})"
        );
        if is_secret(name) {
            assert!(
                !config.contains_key(name),
                "{name} is a secret: in the Secret, not the ConfigMap"
            );
        }
    }
    assert!(secret.contains_key("DATABASE_URL") && secret.contains_key("DATABASE_READ_URL"));
    for name in secret.keys() {
        assert!(is_secret(name), "{name} is not a secret: in the ConfigMap");
    }
    // Nothing unknown (a misspelt name would be ignored by the server without a word).
    for name in config.keys().chain(secret.keys()).chain(&left_out) {
        assert!(
            read.contains(name),
            "{name} is not a variable src/config.rs reads"
        );
    }

    // The values are a production configuration that starts, once the Secret is filled.
    let api = find(&objects, "Deployment", "easel-api");
    let worker = find(&objects, "Deployment", "easel-worker");
    let migrate = find(&objects, "Job", "easel-migrate");
    let api_config = parse_config(&container_environment(api, &config, &secret));
    assert_eq!(api_config.env, Environment::Production);
    assert_eq!(
        api_config.workers, 0,
        "the API pods leave generation to the worker pods"
    );
    assert_eq!(api_config.bind.ip().to_string(), "0.0.0.0");
    assert!(api_config.database_url.is_some());
    assert!(matches!(api_config.media_store, MediaStoreConfig::S3(_)));
    let worker_config = parse_config(&container_environment(worker, &config, &secret));
    assert!(worker_config.workers >= 1);
    parse_config(&container_environment(migrate, &config, &secret));

    // The pods' grace outlasts Easel's own drain (plus the API's preStop pause).
    for (workload, config) in [(api, &api_config), (worker, &worker_config)] {
        let spec = &workload["spec"]["template"]["spec"];
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        let pause: u64 = container(workload)["lifecycle"]["preStop"]["exec"]["command"]
            .as_array()
            .filter(|c| c[0] == "sleep")
            .map_or(0, |c| c[1].as_str().unwrap().parse().unwrap());
        assert!(
            grace > config.shutdown_grace.as_secs() + pause,
            "{}: terminationGracePeriodSeconds {grace} <= EASEL_SHUTDOWN_GRACE_SECS {:?} + preStop {pause}",
            workload["metadata"]["name"],
            config.shutdown_grace
        );
    }
}

#[test]
fn deploy_kubernetes_workloads_are_wired() {
    let objects = kubernetes_objects();
    let api = find(&objects, "Deployment", "easel-api");
    let worker = find(&objects, "Deployment", "easel-worker");
    let migrate = find(&objects, "Job", "easel-migrate");

    // One image, three commands.
    let image = container(api)["image"].as_str().unwrap();
    for (workload, command) in [(api, "serve"), (worker, "worker"), (migrate, "migrate")] {
        let c = container(workload);
        assert_eq!(
            c["image"], image,
            "every Easel container runs the same image"
        );
        assert_eq!(c["args"], serde_json::json!([command]));
        for what in ["cpu", "memory"] {
            assert!(
                c["resources"]["requests"][what].is_string(),
                "{}: a {what} request",
                workload["metadata"]["name"]
            );
        }
        assert!(c["resources"]["limits"]["memory"].is_string());
        let pod = &workload["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    }

    // Probes: liveness /healthz, readiness /readyz, on the port the server listens on.
    let c = container(api);
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"], "/healthz",
        "liveness: /healthz"
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"], "/readyz",
        "readiness: /readyz"
    );
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][0]["name"], "http");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // The worker pods: the same probes on EASEL_WORKER_BIND's port.
    let w = container(worker);
    assert_eq!(w["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(w["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(w["ports"][0]["name"], "probes");
    let worker_config = {
        let config = find(&objects, "ConfigMap", "easel-config");
        config["data"]["EASEL_WORKER_BIND"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        worker_config.rsplit(':').next().unwrap(),
        w["ports"][0]["containerPort"].to_string(),
        "the worker's probes use the port EASEL_WORKER_BIND opens"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(w[probe]["httpGet"]["port"], "probes", "{probe}");
    }

    // The Service selects the API pods; the Ingress sends GraphQL (and its websockets) to it,
    // with websocket timeouts, and keeps /metrics inside.
    let pod_labels = &api["spec"]["template"]["metadata"]["labels"];
    let service = find(&objects, "Service", "easel-api");
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "the Service selects the API pods");
    }
    let ingress = find(&objects, "Ingress", "easel");
    let annotations = &ingress["metadata"]["annotations"];
    for timeout in ["proxy-read-timeout", "proxy-send-timeout"] {
        let secs: u64 = annotations[format!("nginx.ingress.kubernetes.io/{timeout}")]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(secs >= 600, "{timeout}: websockets stay open");
    }
    let paths: Vec<&Value> = ingress["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["http"]["paths"].as_array().unwrap())
        .collect();
    assert!(paths.iter().any(|p| p["path"] == "/graphql"));
    for p in &paths {
        assert_eq!(p["backend"]["service"]["name"], "easel-api");
        assert_eq!(p["backend"]["service"]["port"]["name"], "http");
        assert!(
            !["/", "/metrics"].contains(&p["path"].as_str().unwrap()),
            "the Ingress must not publish /metrics"
        );
    }

    // Disruption budgets and autoscalers point at the two Deployments.
    for (name, workload) in [("easel-api", api), ("easel-worker", worker)] {
        let pdb = find(&objects, "PodDisruptionBudget", name);
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &labels[k], v,
                "{name}: the PodDisruptionBudget selects its pods"
            );
        }
        let hpa = find(&objects, "HorizontalPodAutoscaler", name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
    }
    let api_hpa = find(&objects, "HorizontalPodAutoscaler", "easel-api");
    assert_eq!(api_hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let worker_metric =
        &find(&objects, "HorizontalPodAutoscaler", "easel-worker")["spec"]["metrics"][0];
    assert_eq!(worker_metric["type"], "External");
    assert_eq!(worker_metric["external"]["metric"]["name"], "easel_jobs");
    assert_eq!(
        worker_metric["external"]["metric"]["selector"]["matchLabels"]["status"],
        "queued"
    );
    // ... a metric the server exports under that name and label.
    let metrics = std::fs::read_to_string(root().join("src/metrics.rs")).unwrap();
    assert!(metrics.contains("\"easel_jobs\"") && metrics.contains("(\"status\""));
}

/// `${NAME:-default}` replaced by its default (or the empty string for `${NAME}`), as
/// Compose does with nothing set; `$$` is a literal `$`.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if rest.starts_with("${") {
            let end = rest.find('}').expect("an unclosed ${");
            let inner = &rest[2..end];
            out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
            rest = &rest[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn deploy_compose_file_matches_the_compose_spec_and_is_wired() {
    let path = root().join("deploy/compose.yaml");
    if let Err(errors) = compose_schema_errors(&path) {
        panic!("deploy/compose.yaml does not match the Compose specification:\n{errors}");
    }
    let compose = yaml_documents(&path).remove(0);
    let read = config_variables();
    let services = compose["services"].as_object().unwrap();
    for name in [
        "postgres",
        "minio",
        "minio-init",
        "migrate",
        "api",
        "worker",
        "proxy",
    ] {
        assert!(
            services.contains_key(name),
            "compose.yaml has no {name} service"
        );
    }
    let easel_image = services["api"]["image"].as_str().unwrap();
    for (name, command) in [
        ("migrate", "migrate"),
        ("api", "serve"),
        ("worker", "worker"),
    ] {
        let service = &services[name];
        assert_eq!(service["image"], easel_image);
        assert_eq!(service["command"], serde_json::json!([command]));
        let env: BTreeMap<String, String> = service["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    interpolate(v.as_str().unwrap_or_else(|| panic!("{k}"))),
                )
            })
            .collect();
        assert!(
            env.contains_key("DATABASE_URL"),
            "{name}: containers always set DATABASE_URL"
        );
        let config = parse_config(&env);
        assert_eq!(config.bind.ip().to_string(), "0.0.0.0", "{name}");
        assert!(
            matches!(config.media_store, MediaStoreConfig::S3(_)),
            "{name}"
        );
        match name {
            "api" => assert_eq!(
                config.workers, 0,
                "the api replicas leave jobs to the workers"
            ),
            "worker" => assert!(config.workers >= 1),
            _ => {}
        }
        if name != "migrate" {
            assert_eq!(
                service["depends_on"]["migrate"]["condition"], "service_completed_successfully",
                "{name} starts after the migrations"
            );
            let grace: u64 = service["stop_grace_period"]
                .as_str()
                .and_then(|g| g.strip_suffix('s'))
                .expect("a stop_grace_period in seconds")
                .parse()
                .unwrap();
            assert!(
                grace > config.shutdown_grace.as_secs(),
                "{name}: stop_grace_period"
            );
        }
        for k in env.keys() {
            assert!(
                read.contains(k),
                "{name}: {k} is not a variable src/config.rs reads"
            );
        }
    }
    assert_eq!(
        services["migrate"]["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    // The one URL: the proxy publishes a port; the replicas publish none.
    assert!(services["proxy"]["ports"].is_array());
    assert!(services["api"].get("ports").is_none());
    let caddyfile = std::fs::read_to_string(root().join("deploy/Caddyfile")).unwrap();
    assert!(caddyfile.contains("name api") && caddyfile.contains("port 8080"));
    assert!(caddyfile.contains("respond /metrics 404"));
}
