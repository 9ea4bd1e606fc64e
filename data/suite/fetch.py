"""Fetch pinned Debian packages and npm tarballs into a cache and unpack them there.

Nothing is installed system-wide: .deb files come from `apt-get download NAME=VERSION` and are
unpacked by reading the ar archive and its data.tar.* with the standard library (dpkg-deb is
used only for compressions Python cannot read); npm tarballs come from `npm pack NAME@VERSION`.
Every archive's sha256 must match pins.json before it is unpacked.
"""
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile

from common import SuiteError, sha256_file

PINS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pins.json")


def load_pins():
    with open(PINS_PATH, encoding="utf-8") as f:
        return json.load(f)


class Cache:
    """Downloads under CACHE/dl, unpacked trees under CACHE/x/<archive name>/ (complete ones only)."""

    def __init__(self, root, log=print):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dl = os.path.join(self.root, "dl")
        self.x = os.path.join(self.root, "x")
        os.makedirs(self.dl, exist_ok=True)
        os.makedirs(self.x, exist_ok=True)
        self.pins = load_pins()
        self.log = log

    def pin(self, key):
        return self.pins[key]

    def archive(self, key):
        """Path of the verified archive for pin `key`, downloading it if needed."""
        p = self.pins[key]
        path = os.path.join(self.dl, p["file"])
        if not os.path.exists(path):
            self._download(p, path)
        got = sha256_file(path)
        if got != p["sha256"]:
            bad = path + ".bad"
            os.replace(path, bad)
            raise SuiteError(p["package"], "checksum",
                             "%s has sha256 %s, pins.json expects %s (moved to %s)"
                             % (p["file"], got, p["sha256"], bad))
        return path

    def _download(self, p, path):
        tmp = tempfile.mkdtemp(dir=self.dl, prefix=".fetch.")
        try:
            if p["type"] == "deb":
                cmd = ["apt-get", "download", "%s=%s" % (p["package"], p["version"])]
            else:
                cmd = ["npm", "pack", "--silent", "%s@%s" % (p["package"], p["version"])]
            self.log("  fetch %s %s" % (p["package"], p["version"]))
            try:
                r = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise SuiteError(p["package"], "fetch", "%s: %s" % (" ".join(cmd), e))
            files = os.listdir(tmp)
            if r.returncode != 0 or len(files) != 1:
                raise SuiteError(p["package"], "fetch", "%s exited %d: %s" % (
                    " ".join(cmd), r.returncode, (r.stderr or r.stdout).strip()[-400:]))
            os.replace(os.path.join(tmp, files[0]), path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def tree(self, key, _unused=None):
        """Unpacked tree of pin `key` (only the members under its "extract" prefixes); its root."""
        p = self.pins[key]
        prefixes = p.get("extract")
        name = p["file"].rsplit(".", 1)[0] if p["type"] == "deb" else p["file"][:-len(".tgz")]
        dest = os.path.join(self.x, name)
        if os.path.exists(os.path.join(dest, ".complete")):
            return dest
        path = self.archive(key)
        tmp = tempfile.mkdtemp(dir=self.x, prefix=".unpack.")
        try:
            if p["type"] == "deb":
                tf = _deb_data_tar(path, p["package"])
            else:
                tf = tarfile.open(path, "r:gz")
            n = 0
            if hasattr(tarfile, "data_filter"):
                tf.extraction_filter = tarfile.data_filter
            with tf:
                for m in tf:
                    name_m = m.name.lstrip("./")
                    if prefixes and not any(name_m.startswith(x) for x in prefixes):
                        continue
                    if not (m.isfile() or m.isdir()):
                        continue  # links and devices are never unpacked (a link could point anywhere)
                    # Checked here, not only by tarfile's data_filter (absent before Python 3.11.4):
                    # a member must land inside the unpack folder.
                    if os.path.isabs(name_m) or os.path.normpath(name_m).split(os.sep)[0] == "..":
                        raise SuiteError(p["package"], "unpack", "%s: member %r would be written outside the "
                                         "unpack folder" % (p["file"], m.name))
                    m.name = name_m
                    if m.isfile():
                        n += 1
                    tf.extract(m, tmp, set_attrs=False)
            if n == 0:
                raise SuiteError(p["package"], "unpack", "no files under %s in %s (archive layout changed?)"
                                 % (prefixes, p["file"]))
            with open(os.path.join(tmp, ".complete"), "w") as f:
                f.write("%s\n" % p["sha256"])
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
            raise SuiteError(p["package"], "unpack", "%s: %s" % (p["file"], e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest


def _deb_data_tar(path, package):
    """Open the data.tar.* member of a .deb (an ar archive) as a streaming tarfile."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise SuiteError(package, "unpack", "%s is not a .deb (ar) archive" % path)
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                raise SuiteError(package, "unpack", "no data.tar member in %s" % path)
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58])
            if name.startswith("data.tar"):
                data = f.read(size)
                break
            f.seek(size + (size & 1), 1)
    if name.endswith(".zst"):
        r = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], stdout=subprocess.PIPE)
        if r.returncode != 0:
            raise SuiteError(package, "unpack", "dpkg-deb --fsys-tarfile failed on %s" % path)
        data, mode = r.stdout, "r:"
    else:
        mode = {"data.tar.xz": "r:xz", "data.tar.gz": "r:gz", "data.tar.bz2": "r:bz2",
                "data.tar": "r:"}.get(name)
        if mode is None:
            raise SuiteError(package, "unpack", "unknown member %s in %s" % (name, path))
    return tarfile.open(fileobj=io.BytesIO(data), mode=mode.replace("r:", "r|"))
