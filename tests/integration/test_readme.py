"""The README works as written: its shell examples run against a real
mount, it names only files that exist, the local S3 script does what the
README says, and the mount's own README describes every top-level entry.

How the examples are run (the convention, documented here and in the
README itself):

- Every ```sh block of README.md and doc/manual.md is run, in order, from
  the top of the source tree, against a fresh mount, with `/mnt/ml` and
  `/tmp/ml-store` standing for that mount's mountpoint and store.
- A block preceded by `<!-- readme-test: skip: REASON -->` is not run; the
  reason is required (and shown on GitHub only in the source).
- Lines starting with `#>` are the output of the commands above them, up to
  the previous `#>` lines or the block's start (stdout and stderr, as a
  terminal shows them).  `...` in such a line stands for any text, and a
  number matches a number within 1e-4 relative or 1e-6 absolute (the last
  digits of a float32 answer depend on the CPU's BLAS kernels).  Those
  commands run as one `bash -e -o pipefail -c` and their output must match
  line for line; commands with no `#>` lines after them must exit 0.
- A line `mlfs [-o OPTS] STORE MOUNTPOINT` is run by the test's fixture
  with those arguments (in the foreground, with its own cache folder, so
  that the daemon's stderr and sanitizer reports are checked and it is
  unmounted at the end), not by bash.  `fusermount3 -u /mnt/ml` runs as
  written.
"""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT, is_mounted

DOCS = ["README.md", "doc/manual.md"]
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->", re.S)
MARK = re.compile(r"<!--\s*readme-test:(.*?)-->", re.S)
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)


def sh_blocks(text):
    """[(line number, block text, skip reason or None)] for each ```sh
    block of a Markdown text."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) != "sh":
            continue
        before = text[:m.start()].rstrip()
        skip = None
        last = list(MARK.finditer(before))
        if last and last[-1].end() == len(before):
            s = SKIP.fullmatch(last[-1].group(0))
            assert s and s.group(1), \
                f"line {before.count(chr(10)) + 1}: a readme-test mark " \
                "must be `skip: REASON`"
            skip = s.group(1)
        out.append((text[:m.start()].count("\n") + 2, m.group(2), skip))
    return out


def chunks(block):
    """[(commands, expected lines or None)]: the commands above each group
    of `#>` lines, and the commands after the last group."""
    out, cmds, want = [], [], []
    for line in block.splitlines():
        if line.startswith("#>"):
            want.append(line[3:] if line.startswith("#> ") else line[2:])
            continue
        if want:
            out.append(("\n".join(cmds), want))
            cmds, want = [], []
        cmds.append(line)
    if cmds or want:
        out.append(("\n".join(cmds), want or None))
    return out


NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def close_numbers(w, g):
    """w and g alike but for numbers that differ in their last digits."""
    wn, gn = NUM.findall(w), NUM.findall(g)
    if NUM.sub("#", w) != NUM.sub("#", g) or len(wn) != len(gn):
        return False
    return all(abs(float(a) - float(b)) <= max(1e-6, 1e-4 * abs(float(a)))
               for a, b in zip(wn, gn))


def matches(want, got):
    if len(want) != len(got):
        return False
    for w, g in zip(want, got):
        rx = ".*".join(re.escape(p) for p in w.rstrip().split("..."))
        if not re.fullmatch(rx, g.rstrip()) and \
                not close_numbers(w.rstrip(), g.rstrip()):
            return False
    return True


def split_mounts(cmds):
    """The commands as pieces: ("bash", text) and ("mlfs", argv)."""
    pieces, cur = [], []
    for line in cmds.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if words and words[0] == "mlfs":
            if cur:
                pieces.append(("bash", "\n".join(cur)))
                cur = []
            pieces.append(("mlfs", words[1:]))
        else:
            cur.append(line)
    if "\n".join(cur).strip():
        pieces.append(("bash", "\n".join(cur)))
    return pieces


def run_doc(doc, mlfs_factory, tmp_path):
    text = (ROOT / doc).read_text()
    blocks = sh_blocks(text)
    assert blocks, f"{doc} has no sh blocks"
    base = tmp_path / "m"
    base.mkdir()
    mnt, store = base / "mnt", base / "store"
    mount = None
    env = dict(os.environ,
               PATH=f"{BUILD / 'fs'}:{os.environ['PATH']}")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    ran = 0

    def subst(s):
        return s.replace("/mnt/ml", str(mnt)).replace("/tmp/ml-store",
                                                       str(store))

    for line, block, skip in blocks:
        if skip:
            continue
        ran += 1
        for cmds, want in chunks(block):
            got = []
            status = 0
            for kind, what in split_mounts(cmds):
                if kind == "mlfs":
                    argv = [subst(w) for w in what]
                    opts = []
                    while argv and argv[0] == "-o":
                        opts += argv[1].split(",")
                        argv = argv[2:]
                    assert argv == [str(store), str(mnt)], \
                        f"{doc}:{line}: the mount line must be " \
                        "`mlfs [-o OPTS] /tmp/ml-store /mnt/ml`"
                    mount = mlfs_factory(opts=opts, sub="m")
                    continue
                r = subprocess.run(
                    ["bash", "-e", "-o", "pipefail", "-c", subst(what)],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, timeout=240)
                got += r.stdout.splitlines()
                status = r.returncode
                if status:
                    break
            got = [g.replace(str(mnt), "/mnt/ml")
                   .replace(str(store), "/tmp/ml-store") for g in got]
            shown = "\n".join(got)
            if want is None:
                assert status == 0, \
                    f"{doc}:{line}: exit {status}:\n{cmds}\n{shown}"
            else:
                assert matches(want, got), \
                    f"{doc}:{line}:\n{cmds}\nexpected:\n" + \
                    "\n".join(want) + f"\ngot (exit {status}):\n{shown}"
    assert ran, f"{doc}: every sh block is skipped"
    return mount


def test_readme_examples_run_as_written(mlfs_factory, tmp_path):
    m = run_doc("README.md", mlfs_factory, tmp_path)
    assert m is not None, "the README's tour mounts nothing"
    assert not is_mounted(m.mnt), "the tour ends by unmounting"


def test_manual_examples_run_as_written(mlfs_factory, tmp_path):
    run_doc("doc/manual.md", mlfs_factory, tmp_path)


def test_readme_convention_parses():
    blocks = chunks("a\n#> 1\n#>\nb\nc\n")
    assert blocks == [("a", ["1", ""]), ("b\nc", None)]
    assert matches(["x ... y"], ["x 12:00 y"])
    assert not matches(["x"], ["x", "y"])
    assert matches(["a,0.9971021,4.1e-13"], ["a,0.9971023,4.3e-13"])
    assert not matches(["a,0.9971021"], ["a,0.9981021"])
    assert not matches(["a,0.9971021"], ["b,0.9971021"])
    assert sh_blocks("<!-- readme-test: skip: why -->\n```sh\nls\n```\n") \
        == [(3, "ls\n", "why")]


# -- the files the docs name --------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
# a file name in running text or code: DESIGN.md's, tests/run.sh
FILE = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.(?:md|sh|py|c|h|1))"
                  r"(?![\w/-])")
# "see `issues`": a reference the reader cannot follow unless it is a file
SEE = re.compile(r"\bsee\s+`([^`]+)`", re.I)


def repo_paths(doc, text=None):
    """What a Markdown file names as (what it says, resolved path): its
    relative links (from its folder), paths in the source tree in code
    spans or text (from the top: `tests/run.sh`), other Markdown files by
    name (from its folder: DESIGN.md), and what it tells the reader to
    "see" in a code span."""
    if text is None:
        text = (ROOT / doc).read_text()
    tops = {p.name for p in ROOT.iterdir()
            if not p.name.startswith("build") and p.name != ".git"}
    out = []
    for m in LINK.finditer(text):
        target = m.group(1).split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue
        out.append((target, (ROOT / doc).parent / target))
    here = (ROOT / doc).parent
    text = LINK.sub("]()", text)   # the targets are checked above
    for m in CODE.finditer(text):
        word = m.group(1).rstrip(".,:;")
        if any(c in word for c in "<>*$={}()"):
            continue      # a pattern or a placeholder, not a path
        if word.split("/")[0] in tops:
            out.append((word, ROOT / word))
        elif word.endswith(".md"):
            out.append((word, here / word))
    for m in FILE.finditer(text):
        word = m.group(1)
        if word.split("/")[0] in tops:
            out.append((word, ROOT / word))
        elif word.endswith(".md") and "/" not in word:
            out.append((word, here / word))
    for m in SEE.finditer(text):
        out.append((m.group(0), ROOT / m.group(1)))
    return out


@pytest.mark.parametrize("doc", ["README.md", "doc/manual.md",
                                 "doc/performance.md"])
def test_docs_name_only_files_that_exist(doc):
    paths = repo_paths(doc)
    assert paths, f"{doc} names no file at all?"
    missing = [said for said, p in paths if not p.exists()]
    assert not missing, f"{doc} names files that do not exist: {missing}"


def test_path_check_catches_what_the_old_readme_said():
    text = ("The spec is DESIGN.md's. Later stages (see `issues`).\n"
            "Run tests/run.sh, not `tests/nosuch.sh`; [perf](perf.md).\n")
    said = [w for w, p in repo_paths("doc/probe.md", text) if not p.exists()]
    assert sorted(said) == sorted(["perf.md", "tests/nosuch.sh",
                                   "tests/nosuch.sh", "DESIGN.md",
                                   "see `issues`"])


def test_readme_is_a_landing_page():
    text = (ROOT / "README.md").read_text()
    # the full reference lives in doc/; the README links to it
    assert len(text.splitlines()) < 120
    for target in ("doc/manual.md", "doc/mlfs.1", "doc/performance.md"):
        assert f"]({target})" in text
    # the performance figures were kept, with their tables
    perf = (ROOT / "doc/performance.md").read_text()
    assert "passthrough_ll" in perf and "| measurement |" in perf


# -- the mount's own README ---------------------------------------------

def test_mount_readme_describes_every_top_level_entry(mlfs):
    readme = (mlfs.mnt / "README").read_text()
    headings = set(readme.splitlines())
    entries = sorted(os.listdir(mlfs.mnt))
    assert "datasets" in entries and ".mlfs" in entries
    for name in entries:
        want = name + "/" if (mlfs.mnt / name).is_dir() else name
        assert want in headings, f"the mount's README omits {want}"
    assert os.stat(mlfs.mnt / "README").st_size == len(readme.encode())


# -- examples/s3-local.sh -----------------------------------------------

def test_s3_local_script_mounts_a_bucket(mlfs_factory, tmp_path):
    """examples/s3-local.sh starts a local S3 server and prints a mount
    command that works as printed; `stop` stops the server."""
    state = tmp_path / "s3"
    env = dict(os.environ, MLFS_S3_LOCAL=str(state))
    script = ROOT / "examples" / "s3-local.sh"
    r = subprocess.run(["bash", str(script)], capture_output=True,
                       text=True, env=env, timeout=600)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        lines = [ln.strip() for ln in r.stdout.splitlines()
                 if re.search(r"(^|\s)mlfs -o endpoint=", ln)]
        assert len(lines) == 1, r.stdout
        assert "examples/s3-local.sh stop" in r.stdout
        words = shlex.split(lines[0])
        menv = {}
        while "=" in words[0]:
            k, v = words.pop(0).split("=", 1)
            menv[k] = v
        assert words[0] == "mlfs" and words[1] == "-o", lines[0]
        opts, url, mnt = words[2].split(","), words[3], words[4]
        # the fixture gives the mount a cache folder of its own
        opts = [o for o in opts if not o.startswith("cache=")]
        assert url.startswith("s3://") and mnt == "/mnt/ml"
        assert "AWS_ACCESS_KEY_ID" in menv
        m = mlfs_factory(opts=opts, url=url, env=menv, sub="s3m")
        d = m.mnt / "datasets" / "iris"
        d.mkdir()
        (d / "data.csv").write_bytes(
            (ROOT / "examples/data/iris.csv").read_bytes())
        (m.mnt / ".mlfs" / "cache").write_text("sync\n")
        m.stop()
        # the version is in the bucket, as s3rver keeps it on disk
        assert list(state.rglob("datasets/iris/v1.json*")), \
            sorted(str(p) for p in state.rglob("*"))[:50]
        assert not is_mounted(m.mnt)
        r = subprocess.run(["bash", str(script), "stop"],
                           capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not (state / "env").exists()
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env,
                       capture_output=True, timeout=60)
