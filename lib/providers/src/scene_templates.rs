//! The offline scene writer: Manim CE code from a few templates filled from a brief, so that
//! the code-to-video workflow runs with no model account. The prompt picks the template: a
//! graph when it speaks of plots or functions, a shape when it names one, bullet points when
//! it holds several sentences, else a title card. The code uses `Text` only (no LaTeX here),
//! imports `manim` alone, sizes everything from `config.frame_width`/`frame_height` (so 9:16
//! fits too), and its animations add up to the brief's duration. The same brief always
//! gives the same code.

use reelay_core::scenes::SceneBrief;

/// Manim CE code for `brief`: one `Scene` subclass named `brief.class_name`.
pub fn write_scene(brief: &SceneBrief) -> String {
    let words = words(&brief.prompt);
    let portrait = brief.height > brief.width;
    let title = title_of(brief);
    let named = shapes(&words);
    let (constants, body) = if let Some(function) = Function::named(&words) {
        graph(function)
    } else if let Some(&first) = named.first() {
        let other = if first == SHAPES[0] { SHAPES[1] } else { SHAPES[0] };
        shape(first, named.get(1).copied().unwrap_or(other))
    } else {
        let points = points(&brief.prompt);
        // Without a scene name the heading is the first sentence: not a point again too.
        let skip = usize::from(brief.scene_name.trim().is_empty() && points.len() > 2);
        match &points[skip..] {
            points if points.len() >= 2 => bullets(points, portrait),
            _ => title_card(&subtitle_of(brief, &title), portrait),
        }
    };
    let title = py_str(&wrap(&title, if portrait { 16 } else { 28 }));
    let duration = if brief.duration.is_finite() {
        brief.duration.clamp(1.0, 600.0)
    } else {
        5.0
    };
    format!(
        "from manim import *\n\nTITLE = {title}\n{constants}{FIT}\n\nclass {}(Scene):\n    def construct(self):\n        \
         W = config.frame_width\n        H = config.frame_height\n{}",
        class_name(&brief.class_name),
        timed(body.trim_start_matches('\n'), duration)
    )
}

/// Scales a mobject down, never up, to fit a box.
const FIT: &str = "
def fit(mob, width, height):
    if mob.width > width:
        mob.scale_to_fit_width(width)
    if mob.height > height:
        mob.scale_to_fit_height(height)
    return mob
";

/// `body` with each `RT[share]` replaced by seconds: its share of `duration`, the shares of
/// all of them taken together as the whole.
fn timed(body: &str, duration: f64) -> String {
    let shares: Vec<f64> = body
        .split("RT[")
        .skip(1)
        .filter_map(|rest| rest.split(']').next()?.parse().ok())
        .collect();
    let total: f64 = shares.iter().sum();
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    for share in shares {
        let (before, after) = rest.split_once("RT[").expect("counted above");
        out.push_str(before);
        out.push_str(&format!("{:.3}", duration * share / total));
        rest = after.split_once(']').expect("counted above").1;
    }
    out.push_str(rest);
    out
}

// The templates: lines of `construct` (the brief's text lives in module constants), with
// `RT[share]` for each animation's share of the duration.

const TITLE_CARD: &str = r#"
        title = fit(Text(TITLE, font_size=64, weight=BOLD), W - 1, H * 0.35)
        rule = Line(LEFT, RIGHT, color=BLUE).set_width(min(W - 1, max(title.width, 2)))
        card = VGroup(title, rule)
        {subtitle}card.arrange(DOWN, buff=0.4)
        self.play(Write(title), run_time=RT[0.25])
        self.play(Create(rule), run_time=RT[0.1])
        {subtitle_in}
        self.play(title.animate.scale(1.05), rate_func=there_and_back, run_time=RT[0.1])
        self.wait(RT[0.3])
        self.play(FadeOut(card), run_time=RT[0.1])
"#;

fn title_card(subtitle: &str, portrait: bool) -> (String, String) {
    if subtitle.is_empty() {
        return (
            String::new(),
            TITLE_CARD
                .replace("{subtitle}", "")
                .replace("{subtitle_in}", "self.wait(RT[0.15])"),
        );
    }
    let constant = format!(
        "SUBTITLE = {}\n",
        py_str(&wrap(subtitle, if portrait { 24 } else { 44 }))
    );
    let add = "card.add(fit(Text(SUBTITLE, font_size=34, color=GRAY_B), W - 1, H * 0.3))\n        ";
    let show = "self.play(FadeIn(card[2], shift=UP * 0.3), run_time=RT[0.15])";
    (
        constant,
        TITLE_CARD.replace("{subtitle}", add).replace("{subtitle_in}", show),
    )
}

const BULLETS: &str = r#"
        heading = fit(Text(TITLE, font_size=48, weight=BOLD), W - 1, H * 0.18).to_edge(UP, buff=0.5)
        rows = VGroup(*[Text("\u2022 " + p, font_size=32) for p in POINTS])
        rows.arrange(DOWN, aligned_edge=LEFT, buff=0.4)
        fit(rows, W - 1, H - heading.height - 1.6)
        rows.next_to(heading, DOWN, buff=0.5)
        self.play(Write(heading), run_time=RT[0.15])
{rows}        self.play(Indicate(rows[0], color=YELLOW), run_time=RT[0.1])
        self.wait(RT[0.2])
        self.play(FadeOut(heading), FadeOut(rows), run_time=RT[0.1])
"#;

fn bullets(points: &[String], portrait: bool) -> (String, String) {
    let items: Vec<String> = points
        .iter()
        .map(|p| py_str(&wrap(p, if portrait { 22 } else { 40 })))
        .collect();
    let share = 0.45 / points.len() as f64;
    let rows: String = (0..points.len())
        .map(|n| format!("        self.play(FadeIn(rows[{n}], shift=RIGHT * 0.3), run_time=RT[{share:.4}])\n"))
        .collect();
    (
        format!("POINTS = [{}]\n", items.join(", ")),
        BULLETS.replace("{rows}", &rows),
    )
}

/// A shape a prompt may name: its words and the Manim mobject drawn for it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    words: &'static [&'static str],
    name: &'static str,
    mobject: &'static str,
}

#[rustfmt::skip]
const SHAPES: [Shape; 10] = [
    Shape { words: &["circle", "circles", "round"], name: "Circle", mobject: "Circle(radius=1.6, color=BLUE)" },
    Shape { words: &["square", "squares", "cube"], name: "Square", mobject: "Square(side_length=3, color=GREEN)" },
    Shape { words: &["triangle", "triangles"], name: "Triangle", mobject: "Triangle(color=YELLOW).scale(1.9)" },
    Shape { words: &["star", "stars"], name: "Star", mobject: "Star(n=5, outer_radius=1.9, color=GOLD)" },
    Shape { words: &["hexagon", "hexagons"], name: "Hexagon", mobject: "RegularPolygon(n=6, color=TEAL).scale(1.8)" },
    Shape { words: &["pentagon", "pentagons"], name: "Pentagon", mobject: "RegularPolygon(n=5, color=MAROON).scale(1.8)" },
    Shape { words: &["octagon", "octagons"], name: "Octagon", mobject: "RegularPolygon(n=8, color=PURPLE).scale(1.8)" },
    Shape { words: &["rectangle", "rectangles"], name: "Rectangle", mobject: "Rectangle(width=4, height=2.2, color=ORANGE)" },
    Shape { words: &["ellipse", "oval"], name: "Ellipse", mobject: "Ellipse(width=4, height=2.4, color=PINK)" },
    Shape { words: &["diamond", "rhombus"], name: "Diamond", mobject: "Square(side_length=2.6, color=RED).rotate(PI / 4)" },
];

/// The shapes the prompt names, in the order it names them, each once.
fn shapes(words: &[String]) -> Vec<Shape> {
    let mut found: Vec<Shape> = Vec::new();
    for word in words {
        if let Some(shape) = SHAPES.iter().find(|s| s.words.contains(&word.as_str())) {
            if !found.contains(shape) {
                found.push(*shape);
            }
        }
    }
    found
}

const SHAPE: &str = r#"
        heading = fit(Text(TITLE, font_size=44, weight=BOLD), W - 1, H * 0.16).to_edge(UP, buff=0.5)
        first = fit({first}, W - 1.2, H * 0.45)
        second = fit({second}, W - 1.2, H * 0.45)
        label = Text({first_name}, font_size=36).to_edge(DOWN, buff=0.8)
        label2 = Text({second_name}, font_size=36).to_edge(DOWN, buff=0.8)
        self.play(FadeIn(heading), run_time=RT[0.12])
        self.play(Create(first), Write(label), run_time=RT[0.2])
        self.play(first.animate.set_fill(first.get_color(), opacity=0.5), run_time=RT[0.1])
        self.play(Transform(first, second), Transform(label, label2), run_time=RT[0.2])
        self.play(Rotate(first, angle=PI / 2), run_time=RT[0.13])
        self.wait(RT[0.15])
        self.play(FadeOut(first), FadeOut(label), FadeOut(heading), run_time=RT[0.1])
"#;

fn shape(first: Shape, second: Shape) -> (String, String) {
    let body = SHAPE
        .replace("{first}", first.mobject)
        .replace("{second}", second.mobject)
        .replace("{first_name}", &py_str(first.name))
        .replace("{second_name}", &py_str(second.name));
    (String::new(), body)
}

/// A function a graph prompt may ask for.
#[derive(Debug, Clone, Copy)]
struct Function {
    words: &'static [&'static str],
    label: &'static str,
    python: &'static str,
    x: (f64, f64),
    y: (f64, f64, f64),
    /// Whether its words alone ask for a graph ("line" needs a graph word beside it).
    alone: bool,
}

#[rustfmt::skip]
const FUNCTIONS: [Function; 5] = [
    Function { words: &["cosine", "cos"], label: "y = cos(x)", python: "np.cos(x)", x: (-6.0, 6.0), y: (-1.5, 1.5, 0.5), alone: true },
    Function { words: &["sine", "sin", "wave", "waves", "oscillation"], label: "y = sin(x)", python: "np.sin(x)", x: (-6.0, 6.0), y: (-1.5, 1.5, 0.5), alone: true },
    Function { words: &["parabola", "quadratic", "squared"], label: "y = x\u{b2} / 4", python: "x ** 2 / 4", x: (-4.0, 4.0), y: (-1.0, 4.5, 1.0), alone: true },
    Function { words: &["exponential", "exp", "growth"], label: "y = e\u{2e3}", python: "np.exp(x)", x: (-2.0, 2.0), y: (0.0, 8.0, 1.0), alone: true },
    Function { words: &["linear", "line", "slope"], label: "y = x / 2 + 1", python: "x / 2 + 1", x: (-4.0, 4.0), y: (-2.0, 4.0, 1.0), alone: false },
];
/// Words that ask for a graph without naming a function (drawn as a sine).
const GRAPH_WORDS: [&str; 9] = [
    "graph",
    "plot",
    "function",
    "curve",
    "axes",
    "chart",
    "sinusoid",
    "derivative",
    "integral",
];

impl Function {
    fn named(words: &[String]) -> Option<Function> {
        let named = words
            .iter()
            .find_map(|w| FUNCTIONS.iter().find(|f| f.words.contains(&w.as_str())));
        let graph = words.iter().any(|w| GRAPH_WORDS.contains(&w.as_str()));
        match named {
            Some(f) if f.alone || graph => Some(*f),
            _ => graph.then_some(FUNCTIONS[1]),
        }
    }
}

const GRAPH: &str = r#"
        heading = fit(Text(TITLE, font_size=44, weight=BOLD), W - 1, H * 0.16)
        axes = Axes(x_range=[{x0}, {x1}, 1], y_range=[{y0}, {y1}, {dy}], x_length=W - 1, y_length=min(H * 0.5, (W - 1) * 0.75), tips=False, axis_config={"color": GRAY_B})
        graph = axes.plot(lambda x: {f}, x_range=[{x0}, {x1}], color=YELLOW)
        label = fit(Text(LABEL, font_size=34, color=YELLOW), W - 1, H * 0.1)
        VGroup(heading, axes, label).arrange(DOWN, buff=0.45)
        x_label = Text("x", font_size=28).next_to(axes.x_axis.get_end(), UP, buff=0.15)
        dot = Dot(axes.i2gp({x0}, graph), color=RED)
        self.play(FadeIn(heading), run_time=RT[0.1])
        self.play(Create(axes), FadeIn(x_label), run_time=RT[0.15])
        self.play(Create(graph), Write(label), run_time=RT[0.25])
        self.play(FadeIn(dot), run_time=RT[0.05])
        self.play(MoveAlongPath(dot, graph), run_time=RT[0.25])
        self.wait(RT[0.1])
        self.play(FadeOut(VGroup(heading, axes, x_label, graph, label, dot)), run_time=RT[0.1])
"#;

fn graph(f: Function) -> (String, String) {
    let (x0, x1) = f.x;
    let (y0, y1, dy) = f.y;
    let body = GRAPH
        .replace("{x0}", &x0.to_string())
        .replace("{x1}", &x1.to_string())
        .replace("{y0}", &y0.to_string())
        .replace("{y1}", &y1.to_string())
        .replace("{dy}", &dy.to_string())
        .replace("{f}", f.python);
    (format!("LABEL = {}\n", py_str(f.label)), body)
}

/// The prompt's words, lower-cased.
fn words(prompt: &str) -> Vec<String> {
    prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The prompt's sentences or list items (up to five, each of two words or more).
fn points(prompt: &str) -> Vec<String> {
    prompt
        .split(['.', '!', '?', ';', '\n', '\u{2022}'])
        .map(|p| p.trim().trim_start_matches(['-', '*', ' ']).trim())
        .filter(|p| p.split_whitespace().count() >= 2)
        .take(5)
        .map(|p| clip(p, 90))
        .collect()
}

fn title_of(brief: &SceneBrief) -> String {
    let name = brief.scene_name.trim();
    if !name.is_empty() {
        return clip(name, 60);
    }
    let first = brief.prompt.split(['.', '!', '?', '\n']).next().unwrap_or("").trim();
    let title: Vec<&str> = first.split_whitespace().take(8).collect();
    if title.is_empty() {
        "Untitled".into()
    } else {
        clip(&title.join(" "), 60)
    }
}

fn subtitle_of(brief: &SceneBrief, title: &str) -> String {
    let prompt = clip(brief.prompt.trim(), 120);
    if prompt.is_empty() || prompt == title {
        brief
            .context
            .as_deref()
            .map(|c| clip(c.trim(), 120))
            .unwrap_or_default()
    } else {
        prompt
    }
}

/// At most `max` characters, whitespace folded, underscore runs folded (a `__name__` in text
/// is refused by the checks), an ellipsis where it was cut.
fn clip(text: &str, max: usize) -> String {
    let mut folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while folded.contains("__") {
        folded = folded.replace("__", "_");
    }
    if folded.chars().count() <= max {
        return folded;
    }
    let cut: String = folded.chars().take(max - 1).collect();
    format!("{}\u{2026}", cut.trim_end())
}

/// Words wrapped into lines of about `width` characters (a longer word stays whole).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines.join("\n")
}

/// `text` as a Python string literal: quotes, backslashes and control characters escaped;
/// other characters (any script) kept as they are, the source being UTF-8.
fn py_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The class name as a Python identifier (the brief's own, when it is one).
fn class_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match cleaned.chars().next() {
        None => "GeneratedScene".into(),
        Some(c) if c.is_ascii_digit() => format!("Scene{cleaned}"),
        Some(_) => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(prompt: &str) -> SceneBrief {
        SceneBrief {
            prompt: prompt.into(),
            scene_name: String::new(),
            class_name: "Demo".into(),
            context: None,
            duration: 6.0,
            width: 1280,
            height: 720,
            repairs: Vec::new(),
        }
    }

    #[test]
    fn the_prompt_picks_the_template() {
        assert!(write_scene(&brief("Plot the sine function")).contains("np.sin(x)"));
        assert!(write_scene(&brief("A parabola, drawn")).contains("x ** 2 / 4"));
        let shape = write_scene(&brief("A star becomes a circle"));
        assert!(shape.contains("Star(") && shape.contains("Circle("), "{shape}");
        let points = write_scene(&brief("The water cycle. Water evaporates. Clouds form; rain falls."));
        assert!(points
            .contains("TITLE = \"The water cycle\"\nPOINTS = [\"Water evaporates\", \"Clouds form\", \"rain falls\"]"));
        let card = write_scene(&brief("Hello there"));
        assert!(
            card.contains("TITLE = \"Hello there\"") && !card.contains("SUBTITLE"),
            "{card}"
        );
        let named = SceneBrief {
            scene_name: "Greeting".into(),
            ..brief("Hello there")
        };
        assert!(write_scene(&named).contains("SUBTITLE = \"Hello there\""));
        assert!(card.contains("class Demo(Scene):"));
    }

    #[test]
    fn texts_become_safe_literals_and_durations_add_up() {
        assert_eq!(py_str("a\"b\\c\nd\u{7}é漢"), "\"a\\\"b\\\\c\\nd\\u0007é漢\"");
        assert_eq!(clip("__class__ x", 60), "_class_ x");
        assert_eq!(wrap("one two three four", 9), "one two\nthree\nfour");
        assert_eq!(class_name("9 lives!"), "Scene9lives");
        let code = write_scene(&brief("Plot a cosine"));
        let total: f64 = code
            .split("run_time=")
            .skip(1)
            .chain(code.split("self.wait(").skip(1))
            .map(|rest| rest.split(')').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((total - 6.0).abs() < 0.01, "{total}");
        assert_eq!(code, write_scene(&brief("Plot a cosine")));
    }
}
