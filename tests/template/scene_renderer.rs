//! Container-image functions, and the scene renderer (template.yaml's one image), which runs
//! generated code and so may reach nothing else:
//!
//! - an image function has `PackageType: Image`, no Runtime, Handler or Layers (the zip
//!   functions' globals are ignored), and a Dockerfile, context and tag; the Dockerfile exists
//!   and copies the `bootstrap` of the workspace member under functions/ that the tag names,
//!   which `make build` builds (the Makefile's `FUNCTIONS`); the image pins the Manim the tests
//!   render with;
//! - the scene renderer takes only its own statements, which allow only putting objects under
//!   the render prefix (no managed policy: not the table, not the secret), and none of the
//!   other functions' environment; its timeout covers a render's and lies within the job
//!   runner's wait (`RENDER_INVOKE_TIMEOUT`), which lies within the job runner's timeout;
//! - the job runner names it in `REELAY_RENDER_FUNCTION`, may invoke it and no other function,
//!   and may delete only renders;
//! - the bucket expires renders left behind.

use std::path::Path;

use reelay_aws::scenes::RENDER_PREFIX;
use reelay_lambda::settings::RENDER_INVOKE_TIMEOUT;

use super::{
    binary, environment, function_running, inline_statements, intrinsic, is_arn_of, is_member, is_ref_of, metadata,
    package_name, show, statement_resources, strings, variable, Problems, Template, Value,
};

/// Wall-clock limit of a render when `REELAY_SCENE_TIMEOUT_SECS` is unset (`ManimSettings`).
const DEFAULT_SCENE_TIMEOUT: i64 = 300;

/// An image function's own properties and build metadata.
pub(super) fn check_image(t: &Template, name: &str, function: &Value) -> Problems {
    let mut problems = Vec::new();
    for key in ["Runtime", "Handler", "Layers"] {
        if t.property(function, key).is_some() {
            problems.push(format!(
                "{name}: an image function takes no {key} (IgnoreGlobals the global one)"
            ));
        }
    }
    for key in ["Dockerfile", "DockerContext", "DockerTag"] {
        if metadata(function, key).is_none() {
            problems.push(format!("{name}: an image function needs Metadata.{key}"));
        }
    }
    problems
}

/// An image's Dockerfile exists and wraps the bootstrap of the member its tag names.
pub(super) fn check_image_code(name: &str, function: &Value, root: &Path, members: &[String]) -> Problems {
    let mut problems = Vec::new();
    if let (Some(context), Some(dockerfile)) = (metadata(function, "DockerContext"), metadata(function, "Dockerfile")) {
        match std::fs::read_to_string(root.join(context).join(dockerfile)) {
            Ok(text) if text.lines().any(|l| l.trim_start().starts_with("COPY bootstrap ")) => {}
            Ok(_) => problems.push(format!("{name}: {context}/{dockerfile} does not COPY bootstrap")),
            Err(e) => problems.push(format!("{name}: no readable {context}/{dockerfile} ({e})")),
        }
    }
    if let Some(tag) = metadata(function, "DockerTag") {
        let uri = format!("functions/{tag}");
        let package = std::fs::read_to_string(root.join(&uri).join("Cargo.toml"))
            .ok()
            .and_then(|m| package_name(&m));
        if package.as_deref() != Some(tag) || !is_member(members, &uri) {
            problems.push(format!(
                "{name}: Metadata.DockerTag {tag} must name the workspace member {uri} (package {tag}), whose \
                 bootstrap the image copies"
            ));
        }
    }
    problems
}

/// Every function's package is in the Makefile's `FUNCTIONS`, which `make build` builds.
pub(super) fn check_makefile(t: &Template, makefile: &str) -> Problems {
    let listed: Vec<&str> = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FUNCTIONS :="))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    t.functions()
        .into_iter()
        .filter_map(|(name, f)| {
            let package = binary(f)?;
            (!listed.contains(&package)).then(|| {
                format!("{name}: {package} is not in the Makefile's FUNCTIONS (make build would not build it)")
            })
        })
        .collect()
}

pub(super) fn check_scene_renderer(t: &Template) -> Problems {
    let mut problems = Vec::new();
    let Some((name, renderer)) = function_running(t, "scene-renderer") else {
        return vec!["no function runs scene-renderer".into()];
    };
    if t.property(renderer, "PackageType").and_then(Value::as_str) != Some("Image") {
        problems.push(format!("{name}: must be a container image (Manim does not fit a zip)"));
    }
    // Policies: its own statements, putting renders only.
    let bucket = variable(t, renderer, "REELAY_BUCKET").and_then(|v| match intrinsic(v) {
        Some(("Ref", Value::String(b))) if t.kind(b) == Some("AWS::S3::Bucket") => Some(b.as_str()),
        _ => None,
    });
    let Some(bucket) = bucket else {
        problems.push(format!("{name}: REELAY_BUCKET must be !Ref of the template's bucket"));
        return problems;
    };
    let scratch = format!("${{{bucket}.Arn}}/{RENDER_PREFIX}*");
    let is_scratch = |r: &Value| matches!(intrinsic(r), Some(("Sub", Value::String(s))) if *s == scratch);
    let policies = renderer
        .get("Properties")
        .and_then(|p| p.get("Policies"))
        .and_then(Value::as_sequence);
    for policy in policies.into_iter().flatten() {
        if policy.get("Statement").is_none() {
            problems.push(format!(
                "{name}: takes only its own statements, not {} (the table and the secret are not its)",
                show(policy)
            ));
        }
    }
    if renderer.get("Properties").and_then(|p| p.get("Role")).is_some() {
        problems.push(format!("{name}: takes only its own statements, not a Role"));
    }
    let allowed = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"];
    let mut puts = false;
    for statement in inline_statements(renderer) {
        let actions = strings(statement.get("Action"));
        if let Some(a) = actions.iter().find(|a| !allowed.contains(a)) {
            problems.push(format!("{name}: may not {a}: it runs generated code"));
        }
        if let Some(r) = statement_resources(statement).find(|r| !is_scratch(r)) {
            problems.push(format!("{name}: may reach {}, not only {scratch}", show(r)));
        }
        puts |= actions.contains(&"s3:PutObject");
    }
    if !puts {
        problems.push(format!("{name}: needs s3:PutObject on {scratch}"));
    }
    for (key, _) in environment(t, renderer) {
        if ["TABLE", "QUEUE", "SECRET"].iter().any(|w| key.contains(w)) {
            problems.push(format!(
                "{name}: has {key} in its environment, which is not its to reach"
            ));
        }
    }
    // Timeouts: a render's < the function's < the job runner's wait < the job runner's.
    let render =
        variable(t, renderer, "REELAY_SCENE_TIMEOUT_SECS").map_or(Some(DEFAULT_SCENE_TIMEOUT), |v| t.number(v));
    let timeout = t.property(renderer, "Timeout").and_then(|v| t.number(v));
    let wait = RENDER_INVOKE_TIMEOUT.as_secs() as i64;
    match (render, timeout) {
        (Some(render), Some(timeout)) if render < timeout && timeout < wait => {}
        _ => problems.push(format!(
            "{name}: Timeout {timeout:?} must lie between a render's ({render:?} s) and the job runner's wait ({wait} s)"
        )),
    }
    // The job runner: invokes it, and it only; deletes renders only.
    let Some((runner_name, runner)) = function_running(t, "job-runner") else {
        problems.push("no function runs job-runner".into());
        return problems;
    };
    let runner_timeout = t.property(runner, "Timeout").and_then(|v| t.number(v));
    if runner_timeout.is_none_or(|r| r <= wait) {
        problems.push(format!(
            "{runner_name}: Timeout {runner_timeout:?} must outlast its wait for a render ({wait} s)"
        ));
    }
    if !variable(t, runner, "REELAY_RENDER_FUNCTION").is_some_and(|v| is_ref_of(v, name)) {
        problems.push(format!("{runner_name}: REELAY_RENDER_FUNCTION must be !Ref {name}"));
    }
    let mut invokes = false;
    for statement in inline_statements(runner) {
        let actions = strings(statement.get("Action"));
        if actions.contains(&"lambda:InvokeFunction") {
            invokes = true;
            if let Some(r) = statement_resources(statement).find(|r| !is_arn_of(r, name)) {
                problems.push(format!("{runner_name}: may invoke {}, not only {name}", show(r)));
            }
        }
        if actions.contains(&"s3:DeleteObject") {
            if let Some(r) = statement_resources(statement).find(|r| !is_scratch(r)) {
                problems.push(format!("{runner_name}: may delete {}, not only renders", show(r)));
            }
        }
    }
    if !invokes {
        problems.push(format!("{runner_name}: needs lambda:InvokeFunction on {name}"));
    }
    // The bucket expires what is left under the prefix.
    let rules = t.resource(bucket).and_then(|b| {
        b.get("Properties")?
            .get("LifecycleConfiguration")?
            .get("Rules")?
            .as_sequence()
    });
    let expires = rules.into_iter().flatten().any(|rule| {
        let prefix = rule.get("Prefix").or_else(|| rule.get("Filter")?.get("Prefix"));
        rule.get("Status").and_then(Value::as_str) == Some("Enabled")
            && prefix.and_then(Value::as_str) == Some(RENDER_PREFIX)
            && rule
                .get("ExpirationInDays")
                .and_then(|d| t.number(d))
                .is_some_and(|d| (1..=7).contains(&d))
    });
    if !expires {
        problems.push(format!(
            "{bucket}: needs an enabled lifecycle rule expiring {RENDER_PREFIX} within a week"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::{assert_named, changed_template, check_code, check_runtime, workspace_members};
    use super::*;

    /// The scene renderer's and the image checks' problems after one change to template.yaml.
    fn problems_with(replace: &str, with: &str) -> Problems {
        let t = changed_template(replace, with);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        [check_scene_renderer(&t), check_runtime(&t), check_code(&t, root)].concat()
    }

    fn assert_finds(replace: &str, with: &str, words: &[&str]) {
        assert_named(&problems_with(replace, with), (replace, with), words);
    }

    #[test]
    fn the_renderer_is_an_image_without_the_zip_globals() {
        assert_eq!(problems_with("", ""), Problems::new());
        let ignore = "    IgnoreGlobals: [Runtime, Handler, Environment]\n";
        assert_finds(ignore, "", &["SceneRendererFunction", "no Runtime"]);
        assert_finds(ignore, "", &["SceneRendererFunction", "REELAY_SECRETS_ID"]);
        assert_finds(
            "      PackageType: Image\n",
            "",
            &["SceneRendererFunction", "container image"],
        );
        assert_finds("      DockerTag: scene-renderer\n", "", &["Metadata.DockerTag"]);
        assert_finds(
            "DockerTag: scene-renderer",
            "DockerTag: scene-painter",
            &["functions/scene-painter"],
        );
        assert_finds(
            "      Dockerfile: Dockerfile\n",
            "      Dockerfile: Dockerfile.gone\n",
            &["Dockerfile.gone"],
        );
    }

    #[test]
    fn the_renderer_reaches_nothing_but_its_renders() {
        let own = "              Action:\n                - s3:PutObject\n                - s3:AbortMultipartUpload\n              Resource: !Sub \"${Bucket.Arn}/scratch/renders/*\"\n\n  SceneRendererLogs";
        assert_finds(
            own,
            &own.replace("scratch/renders/*", "*"),
            &["SceneRendererFunction", "may reach"],
        );
        assert_finds(
            own,
            &own.replace("s3:AbortMultipartUpload", "s3:DeleteObject"),
            &["may not s3:DeleteObject"],
        );
        assert_finds(
            "      Policies:\n        - Statement:\n            # Put and multipart uploads of renders",
            "      Policies:\n        - !Ref StatePolicy\n        - Statement:\n            # Put",
            &["SceneRendererFunction", "StatePolicy"],
        );
        assert_finds(
            "          REELAY_SCENE_TIMEOUT_SECS: 300\n",
            "          REELAY_SCENE_TIMEOUT_SECS: 600\n",
            &["Timeout"],
        );
        assert_finds("      Timeout: 600\n", "      Timeout: 900\n", &["job runner's wait"]);
    }

    #[test]
    fn the_job_runner_invokes_the_renderer_and_deletes_only_renders() {
        assert_finds(
            "          REELAY_RENDER_FUNCTION: !Ref SceneRendererFunction\n",
            "",
            &["JobRunnerFunction", "REELAY_RENDER_FUNCTION"],
        );
        let invoke =
            "              Action: lambda:InvokeFunction\n              Resource: !GetAtt SceneRendererFunction.Arn\n";
        assert_finds(
            invoke,
            "              Action: sqs:SendMessage\n              Resource: !GetAtt JobQueue.Arn\n",
            &["needs lambda:InvokeFunction"],
        );
        assert_finds(
            invoke,
            &invoke.replace("SceneRendererFunction.Arn", "PollerFunction.Arn"),
            &["may invoke"],
        );
        assert_finds(
            "              Action: s3:DeleteObject\n              Resource: !Sub \"${Bucket.Arn}/scratch/renders/*\"",
            "              Action: s3:DeleteObject\n              Resource: !Sub \"${Bucket.Arn}/*\"",
            &["JobRunnerFunction", "may delete"],
        );
        assert_finds(
            "            Prefix: scratch/renders/\n",
            "            Prefix: scratch/\n",
            &["Bucket", "lifecycle"],
        );
    }

    #[test]
    fn the_image_renders_with_the_manim_the_tests_use() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
        let pinned = read("tests/requirements.txt")
            .lines()
            .find_map(|l| l.trim().strip_prefix("manim==").map(str::to_string));
        let built = read("infra/scene-renderer/Dockerfile")
            .lines()
            .find_map(|l| l.trim().strip_prefix("ARG MANIM_VERSION=").map(str::to_string));
        assert!(pinned.is_some(), "tests/requirements.txt pins no manim");
        assert_eq!(built, pinned, "infra/scene-renderer/Dockerfile's MANIM_VERSION");
    }

    #[test]
    fn make_build_builds_every_function() {
        let t = changed_template("", "");
        let makefile = "FUNCTIONS := execute-api job-runner media-runner provider-webhook poller webhook-sender\n";
        assert_eq!(
            check_makefile(&t, makefile),
            ["SceneRendererFunction: scene-renderer is not in the Makefile's FUNCTIONS (make build would not build it)"]
        );
        assert_eq!(
            check_makefile(&t, &format!("{} scene-renderer\n", makefile.trim_end())),
            Problems::new()
        );
        // The image's member must be in the workspace.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (name, renderer) = function_running(&t, "scene-renderer").expect("the renderer");
        let members = workspace_members("[workspace]\nmembers = [\"functions/job-runner\"]\n");
        assert_eq!(check_image_code(name, renderer, root, &members).len(), 1);
    }
}
