//! Property tests (a fuzz harness that runs in CI): random bytes, random text from the
//! Dockerfile alphabet and real Dockerfiles with random insertions and deletions go through
//! `parse`, `shell::expand`, `shell::expand_words` and the `.dockerignore` matcher. None may
//! panic; parse errors name a line inside the file; parsed instructions come in line order.

use berth_build::ignore::Matcher;
use berth_build::{parse, shell};
use proptest::prelude::*;

const REAL: &[&str] = &[
    "# syntax=docker/dockerfile:1\nARG GO=1.22\nFROM --platform=$BUILDPLATFORM golang:${GO} AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN --mount=type=cache,target=/go/pkg/mod \\\n    go mod download\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app ./cmd/app\n\nFROM gcr.io/distroless/static AS final\nCOPY --from=build /out/app /app\nUSER nonroot:nonroot\nENTRYPOINT [\"/app\"]\n",
    "FROM python:3.12-slim\nENV PYTHONDONTWRITEBYTECODE=1 \\\n    PYTHONUNBUFFERED=1\nLABEL org.opencontainers.image.title=\"my app\" version=1\nRUN apt-get update && apt-get install -y --no-install-recommends \\\n      curl \\\n      # tools\n      git \\\n && rm -rf /var/lib/apt/lists/*\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nEXPOSE 8000/tcp\nHEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost:8000/ || exit 1\nVOLUME [\"/data\"]\nCMD [\"gunicorn\", \"-b\", \"0.0.0.0:8000\", \"app:app\"]\n",
    "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nSHELL [\"powershell\", \"-Command\"]\nRUN Write-Host `\n    'hello'\nCOPY C:\\src C:\\dst\nWORKDIR C:\\app\n",
    "FROM alpine:3.20\nRUN <<EOF\nset -e\napk add --no-cache bash\necho \"$HOME\"\nEOF\nCOPY <<-'CONF' /etc/app.conf\n\tkey=value\n\tCONF\nRUN <<A cat > /a && <<B cat > /b\none\nA\ntwo\nB\nONBUILD RUN echo triggered\nSTOPSIGNAL SIGTERM\nMAINTAINER someone\nADD --checksum=sha256:0000 https://example.com/x.tar.gz /x/\n",
    "ARG A=1 B\nFROM scratch\nARG A\nENV PATH /usr/local/bin:$PATH\nLABEL a b c\nUSER 1000\nEXPOSE 80 443/udp\nRUN [\"/bin/true\"]\nHEALTHCHECK NONE\n",
];

const ALPHABET: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "USER ",
    "WORKDIR ",
    "ONBUILD ",
    "STOPSIGNAL ",
    "HEALTHCHECK ",
    "MAINTAINER ",
    "AS ",
    "NONE",
    "--mount=",
    "type=cache,",
    "target=/x",
    "--from=",
    "--chown=",
    "--platform=",
    "--interval=",
    "--network=",
    "<<",
    "<<-",
    "EOF",
    "'",
    "\"",
    "\\",
    "`",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    "#",
    "%",
    "/",
    "[",
    "]",
    ",",
    "=",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\\\n",
    "# escape=`\n",
    "# syntax=x\n",
    "a",
    "b",
    "x y",
    "é",
    "☕",
    "\u{feff}",
    "*",
    "**",
    "?",
    "!",
];

fn line_count(src: &str) -> usize {
    src.lines().count().max(1)
}

fn check_parse(src: &str) {
    match parse(src) {
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= line_count(src),
                "error line {} outside 1..={} for {src:?}: {e}",
                e.line,
                line_count(src)
            );
            assert!(!e.message.is_empty());
        }
        Ok(df) => {
            let mut last = 0;
            let n = line_count(src);
            let lines = df
                .meta_args
                .iter()
                .map(|i| i.line)
                .chain(df.stages.iter().flat_map(|s| {
                    std::iter::once(s.line).chain(s.instructions.iter().map(|i| i.line))
                }));
            for line in lines {
                assert!(
                    line > last && line <= n,
                    "line {line} after {last} (of {n}) in {src:?}"
                );
                last = line;
            }
            for stage in &df.stages {
                for inst in &stage.instructions {
                    check_shell(&inst.original, df.escape);
                }
            }
        }
    }
}

fn check_shell(text: &str, escape: char) {
    let lookup = |k: &str| match k {
        "A" => Some("a b".to_string()),
        "EMPTY" => Some(String::new()),
        "P" => Some("/usr/local/bin".to_string()),
        _ => None,
    };
    let _ = shell::expand(text, &lookup, escape);
    let _ = shell::expand_words(text, &lookup, escape);
}

fn check_ignore(text: &str, paths: &[String]) {
    if let Ok(m) = Matcher::from_text(text) {
        for p in paths {
            let _ = m.excluded(p);
            let _ = m.may_include_below(p);
        }
    }
}

fn mutate(base: &str, edits: &[(usize, usize, String)]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for (pos, del, ins) in edits {
        let at = pos % (s.len() + 1);
        let end = (at + del % 8).min(s.len());
        s.splice(at..end, ins.chars());
    }
    s.into_iter().collect()
}

fn alphabet_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..120).prop_map(|v| v.concat())
}

proptest! {
    // 400 cases each by default (about a second); PROPTEST_CASES=100000 for a long run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        check_parse(&text);
        check_shell(&text, '\\');
        check_shell(&text, '`');
        check_ignore(&text, &[text.to_string()]);
    }

    #[test]
    fn random_dockerfile_alphabet(text in alphabet_text(), paths in prop::collection::vec("[a-z*/.!?\\[\\]-]{0,20}", 0..4)) {
        check_parse(&text);
        check_parse(&format!("FROM a\n{text}"));
        check_shell(&text, '\\');
        check_ignore(&text, &paths);
    }

    #[test]
    fn mutated_real_files(
        which in 0..REAL.len(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>(), alphabet_text().prop_map(|s| s.chars().take(12).collect::<String>())), 1..6),
    ) {
        let src = mutate(REAL[which], &edits);
        check_parse(&src);
    }

    #[test]
    fn ignore_patterns(lines in prop::collection::vec("!?[a-z*?/.\\[\\]^\\\\-]{0,16}", 0..8), paths in prop::collection::vec("[a-z/.]{0,24}", 1..6)) {
        check_ignore(&lines.join("\n"), &paths);
    }
}

#[test]
fn the_real_files_parse() {
    for src in REAL {
        let df = parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
        assert!(!df.stages.is_empty());
        check_parse(src);
    }
}

#[test]
fn pathological_inputs() {
    let deep_json = format!(
        "FROM a\nCMD {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_subst = format!("FROM a\nENV X={}\n", "${a:-".repeat(50_000));
    let long_line = format!("FROM a\nRUN {}\n", "x \\".repeat(100_000));
    let many_heredocs = format!("FROM a\nRUN {}\n", "<<E ".repeat(5_000));
    for src in [
        deep_json.as_str(),
        deep_subst.as_str(),
        long_line.as_str(),
        many_heredocs.as_str(),
        "\\",
        "\r",
        "\n\n\n",
        "FROM a\nRUN <<",
        "FROM a\nRUN <<-",
        "FROM a\nCOPY <<\"\" x",
        "# escape=`\nFROM a `",
        "FROM a\nONBUILD ONBUILD ONBUILD x",
        "FROM a\nHEALTHCHECK --interval=99999999999999999999h CMD x",
        "FROM a\nRUN --mount=type=tmpfs,target=/x,size=99999999999999999999999p x",
    ] {
        check_parse(src);
    }
    check_shell(&"${a:-".repeat(100_000), '\\');
    check_shell(&"$".repeat(100_000), '\\');
    check_ignore(&"**/".repeat(10_000), &["a/".repeat(1000)]);
}
