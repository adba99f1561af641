//! Heredocs (`RUN <<EOF`, `COPY <<EOF /dest`): bodies, delimiters, quoting, tab stripping,
//! several per line, and the lines of everything after them.

use berth_build::ast::{CmdLine, Heredoc, Inst};
use berth_build::parse;

fn stage0(src: &str) -> Vec<berth_build::ast::Instruction> {
    parse(src)
        .unwrap_or_else(|e| panic!("{e}\n---\n{src}"))
        .stages
        .remove(0)
        .instructions
}

fn doc(name: &str, content: &str, expand: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
    }
}

#[test]
fn run_heredoc_body_and_following_lines() {
    let src = "FROM alpine\nRUN <<EOF\napk add curl\necho \"$HOME\"\nEOF\nRUN echo after\n";
    let i = stage0(src);
    assert_eq!(i.len(), 2);
    let Inst::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(r.cmd, CmdLine::Shell("<<EOF".into()));
    assert_eq!(
        r.heredocs,
        [doc("EOF", "apk add curl\necho \"$HOME\"\n", true)]
    );
    assert_eq!(i[0].line, 2);
    assert_eq!(i[0].original, "RUN <<EOF");
    assert_eq!(i[1].line, 6, "lines after a heredoc keep their numbers");
}

#[test]
fn quoted_delimiters_do_not_expand() {
    for opener in ["<<'EOF'", "<<\"EOF\"", "<<E'O'F"] {
        let src = format!("FROM a\nRUN {opener}\necho $X\nEOF\n");
        let i = stage0(&src);
        let Inst::Run(r) = &i[0].kind else { panic!() };
        assert_eq!(r.heredocs, [doc("EOF", "echo $X\n", false)], "{opener}");
    }
}

#[test]
fn dash_strips_leading_tabs() {
    let src =
        "FROM a\nRUN <<-EOT\n\tif true; then\n\t\techo yes\n\tfi\n  spaces stay\n\tEOT\nRUN x\n";
    let i = stage0(src);
    let Inst::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(
        r.heredocs,
        [doc(
            "EOT",
            "if true; then\necho yes\nfi\n  spaces stay\n",
            true
        )]
    );
    assert_eq!(i[1].line, 8);
}

#[test]
fn several_heredocs_on_one_line() {
    let src = "FROM a\nRUN <<FILE1 cat > /a && <<FILE2 cat > /b\none\nFILE1\ntwo\nFILE2\n";
    let i = stage0(src);
    let Inst::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(
        r.cmd,
        CmdLine::Shell("<<FILE1 cat > /a && <<FILE2 cat > /b".into())
    );
    assert_eq!(
        r.heredocs,
        [doc("FILE1", "one\n", true), doc("FILE2", "two\n", true)]
    );
    // With a program reading the heredoc, and flags before it.
    let src = "FROM a\nRUN --network=none python3 <<EOF\nprint('hi')\nEOF\n";
    let Inst::Run(r) = &stage0(src)[0].kind else {
        panic!()
    };
    assert_eq!(r.cmd, CmdLine::Shell("python3 <<EOF".into()));
    assert_eq!(r.heredocs[0].content, "print('hi')\n");
}

#[test]
fn copy_heredoc() {
    let src = "FROM a\nCOPY --chmod=0755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF\nCOPY <<A <<B /dir/\na\nA\nb\nB\n";
    let i = stage0(src);
    let Inst::Copy(c) = &i[0].kind else { panic!() };
    assert_eq!(c.sources, ["<<EOF"]);
    assert_eq!(c.dest, "/usr/local/bin/hello");
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert_eq!(c.heredocs, [doc("EOF", "#!/bin/sh\necho hello\n", true)]);
    let Inst::Copy(c) = &i[1].kind else { panic!() };
    assert_eq!(c.sources, ["<<A", "<<B"]);
    assert_eq!(c.heredocs, [doc("A", "a\n", true), doc("B", "b\n", true)]);
    assert_eq!(i[1].line, 6);
}

#[test]
fn body_lines_are_not_instructions_or_comments() {
    // A body can hold what would otherwise be comments, continuations or instructions.
    let src = "FROM a\nRUN <<EOF\n# not a comment\nFROM nothing \\\n\nEOF\nCMD x\n";
    let i = stage0(src);
    let Inst::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(
        r.heredocs[0].content,
        "# not a comment\nFROM nothing \\\n\n"
    );
    assert_eq!(i.len(), 2);
    // CRLF: the delimiter matches without its \r, the body keeps its bytes.
    let i = stage0("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\n");
    let Inst::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(r.heredocs[0].content, "x\r\n");
}

#[test]
fn not_heredocs() {
    // JSON form, quoted text, shifts and here-strings are left alone.
    for line in [
        "RUN [\"sh\", \"-c\", \"cat <<EOF\"]",
        "RUN echo '<<EOF'",
        "RUN echo $((1<<2))",
        "RUN cat <<<word",
        "RUN echo \"unbalanced <<EOF",
        "ENV A=<<EOF",
    ] {
        let src = format!("FROM a\n{line}\nRUN next\n");
        let i = stage0(&src);
        assert_eq!(i.len(), 2, "{line}: {i:?}");
        if let Inst::Run(r) = &i[0].kind {
            assert!(r.heredocs.is_empty(), "{line}");
        }
    }
}

#[test]
fn onbuild_heredoc_is_kept_in_the_trigger() {
    let src = "FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nUSER x\n";
    let i = stage0(src);
    assert_eq!(i[0].kind, Inst::Onbuild("RUN <<EOF\necho hi\nEOF".into()));
    assert_eq!(i[1].kind, Inst::User("x".into()));
    // The trigger parses again to the same heredoc.
    let again = parse(&format!("FROM a\n{}\n", "RUN <<EOF\necho hi\nEOF")).unwrap();
    let Inst::Run(r) = &again.stages[0].instructions[0].kind else {
        panic!()
    };
    assert_eq!(r.heredocs, [doc("EOF", "echo hi\n", true)]);
}

#[test]
fn unterminated_heredoc_names_its_line() {
    let e = parse("FROM a\nRUN true\nRUN <<EOF\necho\nEOFX\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("unterminated heredoc"), "{e}");
    let e = parse("FROM a\nCOPY <<A <<B /x\na\nA\nb\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("\"B\""), "{e}");
}

#[test]
fn errors_after_a_heredoc_count_its_body_lines() {
    let e = parse("FROM a\nRUN <<EOF\none\ntwo\nEOF\nBOGUS x\n").unwrap_err();
    assert_eq!(e.line, 6);
    assert!(e.message.contains("unknown instruction: BOGUS"), "{e}");
    let e = parse("FROM a\nCOPY <<-EOF /x\n\tbody\n\tEOF\nCOPY y\n").unwrap_err();
    assert_eq!(e.line, 5);
}
