//! What a code-writing model is told (the system prompt and the user message made from a
//! `SceneBrief`), and how its code is read back out of the answer.

use reelay_core::ports::ProviderError;
use reelay_core::scenes::{SceneBrief, SceneStep};

/// The two messages of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenePrompt {
    pub system: String,
    pub user: String,
}

impl ScenePrompt {
    pub fn of(brief: &SceneBrief) -> ScenePrompt {
        ScenePrompt {
            system: system_prompt(brief),
            user: user_message(brief),
        }
    }
}

/// Manim's frame is 8 units tall whatever the pixels; its width follows the aspect ratio.
const FRAME_HEIGHT_UNITS: f64 = 8.0;

/// How to write a scene that the validator accepts and the sandboxed renderer can render:
/// the rules mirror what `SceneRunner::check` refuses, so that a first answer passes.
pub fn system_prompt(brief: &SceneBrief) -> String {
    let class = &brief.class_name;
    let (w, h) = (brief.width, brief.height);
    let units_wide = FRAME_HEIGHT_UNITS * f64::from(w) / f64::from(h.max(1));
    let duration = brief.duration;
    format!(
        "You write animations with Manim Community Edition (v0.18 or later) in Python. \
Answer with one complete Python file in a single ```python fenced block, and nothing else.

Rules the file must follow (it is checked before it runs; a file that breaks one is refused):
1. Define exactly one class, named `{class}`, deriving from `Scene`, with a `construct(self)` \
method. No other `Scene` classes; helper functions and plain classes are fine.
2. Import only `from manim import *`, plus `numpy` (`import numpy as np`), `math` and `random` \
if needed. No other imports.
3. No file, network, process or environment access and no dynamic code: no `open`, `os`, `sys`, \
`subprocess`, `socket`, `pathlib`, `shutil`, `urllib`, `requests`, `eval`, `exec`, `compile`, \
`__import__`, `globals`, `getattr` on modules. No external assets: no images, SVG files, \
sounds or fonts from disk.
4. LaTeX is NOT installed. Never use `MathTex`, `Tex`, `Title`, `BulletedList`, `Matrix`, \
`DecimalNumber`, `Integer`, `Variable`, `BraceLabel`, `Brace.get_text`, `Axes.add_coordinates`, \
`get_axis_labels` or `include_numbers=True`: they all need LaTeX. Write every piece of text, \
formulas included, with `Text` (Unicode such as x², √, π, θ, ≤, → is fine) or `MarkupText`.
5. The video is {w}×{h} pixels: the visible frame is {units_wide:.2} units wide and \
{FRAME_HEIGHT_UNITS} units tall, centred on the origin (use `config.frame_width` and \
`config.frame_height` rather than fixed numbers). Keep everything inside it with a margin: \
scale long text down (`scale_to_fit_width`) and arrange groups (`arrange`, `next_to`, `to_edge`) \
so nothing overlaps or leaves the frame.
6. The animations, waits included, should last about {duration} seconds in all (set \
`run_time` where needed), ending with `self.wait(...)` so that the last frame holds.
7. Use the current API: `Create` (not `ShowCreation`), `Write`, `FadeIn`, `FadeOut`, \
`Transform`, `mobject.animate...`; do not touch `config` settings, call `render()` or add an \
`if __name__ == \"__main__\"` block."
    )
}

/// The scene asked for, and every earlier round's refusal with the code refused.
pub fn user_message(brief: &SceneBrief) -> String {
    let mut message = format!("Scene \"{}\": {}\n", brief.scene_name, brief.prompt.trim());
    if let Some(context) = brief.context.as_deref().filter(|c| !c.trim().is_empty()) {
        message.push_str(&format!("\nContext for the whole video: {}\n", context.trim()));
    }
    message.push_str(&format!(
        "\nWrite it as the class `{}`, about {} seconds long, for a {}×{} frame.\n",
        brief.class_name, brief.duration, brief.width, brief.height
    ));
    if brief.repairs.is_empty() {
        return message;
    }
    message.push_str(
        "\nEarlier versions of this scene were refused. Fix what each error says (and anything \
else that would fail the same way) and answer with the corrected, complete file, not a diff.\n",
    );
    for (n, repair) in brief.repairs.iter().enumerate() {
        let fence = fence_for(&repair.code);
        message.push_str(&format!(
            "\nAttempt {} failed at {}:\n{}\n\nIts code:\n{fence}python\n{}\n{fence}\n",
            n + 1,
            step_words(repair.step),
            repair.error.trim(),
            repair.code.trim_end(),
        ));
    }
    message
}

fn step_words(step: SceneStep) -> &'static str {
    match step {
        SceneStep::CodeGeneration => "code generation",
        SceneStep::Validation => "validation (the checks run before rendering)",
        SceneStep::Compilation => "rendering (Manim ran the code)",
        SceneStep::Upload => "upload",
    }
}

/// A fence longer than any run of backticks in `code`, so that the code cannot close it.
fn fence_for(code: &str) -> String {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The Python file in a model's answer: the fenced block that defines `class_name` (else the
/// first Python block, else the first block), or the whole answer when it has no fence. An
/// opening fence with no closing one (a sloppy answer) runs to the end.
pub fn extract_code(answer: &str, class_name: &str, provider: &str) -> Result<String, ProviderError> {
    let blocks = fenced_blocks(answer);
    let defines = |code: &str| code.contains(&format!("class {class_name}"));
    let python = |info: &str| matches!(info, "python" | "py" | "python3");
    let code = blocks
        .iter()
        .find(|(info, code)| python(info) && defines(code))
        .or_else(|| blocks.iter().find(|(_, code)| defines(code)))
        .or_else(|| blocks.iter().find(|(info, _)| python(info)))
        .or_else(|| blocks.first())
        .map_or_else(
            || answer.trim().to_string(),
            |(_, code)| code.trim_matches('\n').to_string(),
        );
    if code.trim().is_empty() {
        return Err(ProviderError::Fatal(format!(
            "{provider} answered no code for `{class_name}` (an empty answer)"
        )));
    }
    Ok(format!("{}\n", code.trim_end()))
}

/// `(info string, content)` of each fenced block, in order.
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        match &mut open {
            None if ticks >= 3 => {
                let info = trimmed[ticks..].trim().to_ascii_lowercase();
                open = Some((ticks, info, Vec::new()));
            }
            None => {}
            Some((fence, _, _)) if ticks >= *fence && trimmed.trim_end().len() == ticks => {
                let (_, info, lines) = open.take().expect("a block is open");
                blocks.push((info, lines.join("\n")));
            }
            Some((_, _, lines)) => lines.push(line),
        }
    }
    if let Some((_, info, lines)) = open {
        blocks.push((info, lines.join("\n")));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelay_core::scenes::Repair;

    fn brief() -> SceneBrief {
        SceneBrief {
            prompt: "Show a circle becoming a square".into(),
            scene_name: "Shapes".into(),
            class_name: "ShapesScene".into(),
            context: Some("A geometry lesson".into()),
            duration: 6.0,
            width: 1080,
            height: 1920,
            repairs: Vec::new(),
        }
    }

    #[test]
    fn the_system_prompt_names_the_class_the_frame_and_forbids_latex() {
        let system = system_prompt(&brief());
        assert!(system.contains("named `ShapesScene`"), "{system}");
        assert!(system.contains("LaTeX is NOT installed"));
        assert!(system.contains("`MathTex`") && system.contains("with `Text`"));
        assert!(
            system.contains("1080×1920") && system.contains("4.50 units wide"),
            "{system}"
        );
        assert!(system.contains("about 6 seconds") && system.contains("self.wait"));
    }

    #[test]
    fn the_user_message_carries_each_repair_with_its_code() {
        let mut brief = brief();
        assert!(!user_message(&brief).contains("refused"));
        brief.repairs = vec![
            Repair {
                step: SceneStep::Validation,
                error: "import of `os` is not allowed".into(),
                code: "import os\nclass ShapesScene(Scene): pass".into(),
            },
            Repair {
                step: SceneStep::Compilation,
                error: "NameError: name 'MathTex' is not defined".into(),
                code: "s = '```'".into(),
            },
        ];
        let user = user_message(&brief);
        assert!(
            user.starts_with("Scene \"Shapes\": Show a circle becoming a square\n"),
            "{user}"
        );
        assert!(user.contains("Context for the whole video: A geometry lesson"));
        assert!(user.contains("Attempt 1 failed at validation"), "{user}");
        assert!(user.contains("import of `os` is not allowed\n\nIts code:\n```python\nimport os\n"));
        assert!(user.contains("Attempt 2 failed at rendering"));
        // A fence the code cannot close.
        assert!(user.contains("````python\ns = '```'\n````"), "{user}");
        assert!(user.contains("complete file"));
    }

    #[test]
    fn code_comes_out_of_fences_or_bare() {
        let fenced = "Here you go:\n```python\nfrom manim import *\nclass A(Scene):\n    pass\n```\nEnjoy!";
        assert_eq!(
            extract_code(fenced, "A", "x").unwrap(),
            "from manim import *\nclass A(Scene):\n    pass\n"
        );
        let two = "```text\nnotes\n```\n```py\nhelper = 1\n```\n```\nclass A(Scene): pass\n```";
        assert_eq!(extract_code(two, "A", "x").unwrap(), "class A(Scene): pass\n");
        let unclosed = "```python\nclass A(Scene):\n    pass";
        assert_eq!(extract_code(unclosed, "A", "x").unwrap(), "class A(Scene):\n    pass\n");
        let bare = "\nfrom manim import *\n\nclass A(Scene):\n    pass\n\n";
        assert_eq!(
            extract_code(bare, "A", "x").unwrap(),
            "from manim import *\n\nclass A(Scene):\n    pass\n"
        );
        for empty in ["", "  \n", "```python\n```"] {
            match extract_code(empty, "A", "openai") {
                Err(ProviderError::Fatal(m)) => assert!(m.contains("openai") && m.contains("empty"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
