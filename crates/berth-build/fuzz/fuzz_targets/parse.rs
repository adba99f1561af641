//! libFuzzer target: any bytes through the parser, word expansion and `.dockerignore` matching.
//! Nothing may panic, and a parse error names a line inside the input.
#![no_main]

use berth_build::ignore::Matcher;
use berth_build::{parse, shell};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1);
    match parse(&text) {
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line),
        Ok(df) => {
            for inst in df.stages.iter().flat_map(|s| &s.instructions) {
                let _ = shell::expand(&inst.original, &|_| Some("a b".into()), df.escape);
            }
        }
    }
    let lookup = |k: &str| (k == "A").then(|| "x y".to_string());
    let _ = shell::expand(&text, &lookup, '\\');
    let _ = shell::expand_words(&text, &lookup, '`');
    if let Ok(m) = Matcher::from_text(&text) {
        let _ = m.excluded(&text);
        let _ = m.may_include_below(&text);
    }
});
