"""meson install: the daemon, the man page, the plugin header and its
helper header with their pkg-config file (a plugin builds out of tree as
C11 and as C++), and a mount through mount(8) as /etc/fstab would do it."""
import json
import os
import shutil
import subprocess
import time

from conftest import BUILD, ROOT, is_mounted, wait_job

PLUGIN = r'''
#include <mlfs_plugin.h>
#include <mlfs_plugin_util.h>
static const struct mlfs_train_ops ops = { sizeof(ops) };
MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	MLFS_ABI_MAJOR, MLFS_ABI_MINOR, MLFS_STAGE_TRAIN, "demo", "1", &ops,
};
'''


def test_meson_install_and_out_of_tree_plugin(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(BUILD),
                        "--no-rebuild", "--destdir", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    files = [str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()]
    assert any(f.endswith("bin/mlfs") for f in files)
    assert any(f.endswith("man1/mlfs.1") for f in files)
    assert any(f.endswith("include/mlfs/mlfs_plugin.h") for f in files)
    assert any(f.endswith("include/mlfs/mlfs_plugin_util.h") for f in files)
    pcs = [p for p in dest.rglob("mlfs-plugin.pc")]
    assert pcs
    # pkg-config with the staged prefix
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    cflags = subprocess.run(["pkg-config", "--cflags", "mlfs-plugin"],
                            capture_output=True, text=True, env=env)
    assert cflags.returncode == 0, cflags.stderr
    headers = subprocess.run(["pkg-config", "--variable=headers",
                              "mlfs-plugin"],
                             capture_output=True, text=True, env=env)
    assert headers.stdout.split() == ["mlfs_plugin.h", "mlfs_plugin_util.h"]
    src = tmp_path / "demo.c"
    src.write_text(PLUGIN)
    for cc, std in (("gcc", "-std=c11"), ("g++", "-std=c++17")):
        # deps.sh installs g++: a missing compiler fails, never skips
        assert shutil.which(cc), f"{cc} is missing (tests/deps.sh)"
        lang = ["-x", "c++"] if cc == "g++" else []
        r = subprocess.run([cc, std, "-Wall", "-Wextra", "-Werror",
                            "-Wno-missing-field-initializers",
                            "-pedantic", "-shared", "-fPIC",
                            "-fvisibility=hidden", *cflags.stdout.split(),
                            *lang, str(src), "-o",
                            str(tmp_path / f"demo-{cc}.so")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    syms = subprocess.run(["nm", "-D", "--defined-only",
                           str(tmp_path / "demo-gcc.so")],
                          capture_output=True, text=True).stdout
    assert "mlfs_plugin" in syms
    man = (next(dest.rglob("mlfs.1"))).read_text()
    assert man.startswith(".TH MLFS 1") and "fuse.mlfs" in man
    # `man mlfs` opens what was installed (examples/demo.sh installs to
    # /usr/local; here the staged copy of its man directory)
    mandir = next(dest.rglob("man1")).parent
    r = subprocess.run(["man", "-w", "mlfs"], capture_output=True,
                       text=True, env=dict(os.environ, MANPATH=str(mandir)))
    assert r.returncode == 0 and r.stdout.strip().endswith("man1/mlfs.1"), \
        r.stdout + r.stderr
    r = subprocess.run(["man", "-P", "cat", "mlfs"], capture_output=True,
                       text=True, env=dict(os.environ, MANPATH=str(mandir),
                                           MANWIDTH="80"))
    assert r.returncode == 0 and "STORE" in r.stdout, r.stderr


def test_mount_through_mount8_as_fstab_does(tmp_path):
    store, mnt, cache = tmp_path / "s", tmp_path / "m", tmp_path / "c"
    store.mkdir()
    mnt.mkdir()
    env = dict(os.environ, PATH=f"{BUILD / 'fs'}:{os.environ['PATH']}")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    # mount.fuse3 runs the helper with a fixed PATH, so name the binary
    # the way fstab may: "TYPE#SOURCE" with type fuse
    r = subprocess.run(["mount", "-t", "fuse", "-o",
                        f"cache={cache},_netdev,nofail",
                        f"{BUILD / 'fs' / 'mlfs'}#{store}", str(mnt)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 10
        while not is_mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (mnt / "README").read_text().startswith("mlfs")
        (mnt / "datasets" / "x").mkdir()
        (mnt / "datasets" / "x" / "data.csv").write_text("a,b\n1,2\n")
        assert os.readlink(mnt / "datasets" / "x" / "latest") == "v1"
    finally:
        subprocess.run(["umount", str(mnt)])
    deadline = time.monotonic() + 10
    while is_mounted(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(mnt)


def test_example_plugin_builds_out_of_tree_and_trains(tmp_path, mlfs_factory):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(BUILD),
                        "--no-rebuild", "--destdir", str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pc = next(dest.rglob("mlfs-plugin.pc")).parent
    work = tmp_path / "plugin"
    shutil.copytree(ROOT / "examples" / "plugin", work)
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc),
               PKG_CONFIG_SYSROOT_DIR=str(dest),
               CFLAGS="-O2 -Wall -Wextra -Werror")
    r = subprocess.run(["make", "-C", str(work)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    pdir = tmp_path / "plugins"
    pdir.mkdir()
    for so in (BUILD / "plugins" / "train").glob("*.so"):
        shutil.copy(so, pdir)
    shutil.copy(work / "centroid.so", pdir)
    shutil.copy(work / "winsorize.so", pdir)
    m = mlfs_factory(opts=[f"plugins={pdir}"])
    plugins = (m.mnt / ".mlfs" / "plugins").read_text()
    assert "centroid train" in plugins and "winsorize prep" in plugins
    d = m.mnt / "datasets" / "iris"
    d.mkdir()
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", d / "data.csv")
    (m.mnt / "train" / "c.json").write_text(
        '{"dataset": "iris", "algorithm": "centroid"}')
    assert wait_job(m.mnt, "c") == "succeeded\n"
    # it never calls stopped() (new in ABI 1.1), as a plugin written for
    # 1.0 does not: the job works and metrics.json says it does not know
    st = json.loads((m.mnt / "models/c/v1/metrics.json").read_text())
    assert st["stopped"]["rule"] == "unknown"
    r = subprocess.run(["bash", "-c", f"echo 5.1,3.5,1.4,0.2 > "
                        f"{m.mnt}/models/c/predict; cat {m.mnt}/models/c/predict"],
                       capture_output=True, text=True)
    assert r.stdout.startswith("setosa,")
    # the prep plugin: a step of prepare, its params judged in the write
    r = subprocess.run(["bash", "-c", f"echo '{{\"steps\": [{{\"winsorize\": "
                        f"{{\"lo\": 5}}}}]}}' > {d}/prepare"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert '"lo" and "hi" are needed' in m.errors()
    (d / "prepare").write_text(json.dumps(
        {"steps": [{"winsorize": {"lo": 1, "hi": 5}}]}))
    assert wait_job(m.mnt, "iris-prepare-1") == "succeeded\n"
    rows = (d / "v2/data.csv").read_text().splitlines()
    assert len(rows) == 151 and rows[1] == "5,3.5,1.4,1,setosa"
