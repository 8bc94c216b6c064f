"""File writes of the sinks (HLS, DVR) that never leave a partial file behind.

Rules (this module owns them; every function here runs in a worker thread, never on the loop):
- `write_atomically(path, data)`: the directory is made, `data` goes to `path + ".tmp"`, which
  replaces `path` once complete. When anything fails the temp file is removed and the error
  raised: a full disk leaves no `.tmp`, and `path` keeps its old content.
- `open_new(path)`: a recording's `(final_path, file)`, written as `final_path + ".tmp"`
  opened with O_EXCL, so two recordings never share a temp file. `final_path` is `path`, or
  `name-N.ext` with the smallest N such that neither it nor its `.tmp` exists (a name is never
  reused, a crash's `.tmp` is never touched).
- `finish_new(final_path)`: the complete temp file takes its final name without replacing a
  file that appeared there meanwhile (a hard link, then the temp name goes); where hard links
  are not supported, a rename. Returns the name it took.
- `remove_quietly(path)`: unlink, ignoring a missing file; other errors are returned as text.
- `free_bytes(path)`: the space an unprivileged writer has on `path`'s filesystem (the
  nearest existing directory), None when it cannot be measured.
"""
import errno
import os


def remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        return f"remove {path}: {e.strerror or e}"
    return None


def write_atomically(path, data):
    tmp = path + ".tmp"
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:           # the directory first (not a syscall per write)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def _candidates(path):
    base, ext = os.path.splitext(path)
    yield path
    n = 0
    while True:
        n += 1
        yield f"{base}-{n}{ext}"


def open_new(path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for candidate in _candidates(path):
        if os.path.exists(candidate):
            continue
        try:
            return candidate, open(candidate + ".tmp", "xb")
        except FileExistsError:
            continue


def finish_new(final_path):
    tmp = final_path + ".tmp"
    for candidate in _candidates(final_path):
        if candidate != final_path and os.path.exists(candidate + ".tmp"):
            continue
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            os.rename(tmp, final_path)
            return final_path
        os.unlink(tmp)
        return candidate


def free_bytes(path):
    directory = os.path.dirname(path) or "."
    while True:
        try:
            st = os.statvfs(directory)
            return st.f_bavail * st.f_frsize
        except FileNotFoundError:
            parent = os.path.dirname(directory)
            if parent == directory:
                return None
            directory = parent
        except OSError:
            return None
