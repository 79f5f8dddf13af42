"""The ``file`` step: write a local file atomically, or read one into the body.

::

    - id: keep_copy
      file:
        write:
          dir: "${env:EDI_OUTBOX}/{{ supplier.id }}"      # created when missing
          name: "PO_{{ po_number }}.edi"
          content: $vars.edi                              # the body if omitted
          overwrite: unique                               # replace (default) | fail | unique

    - id: load_rates
      file: {read: {path: "${env:RATES_DIR}/rates.csv"}}

``write`` writes a temp file (``.NAME.<random>.part``) in the target folder, flushes it to disk
and then renames it, so a reader (a partner's pick-up job, our own drop poller) never sees half a
file. ``overwrite`` decides what an existing file means: ``replace`` it, ``fail`` the step (not
retried), or write under a ``unique`` name (``PO_1.edi``, then ``PO_1.1.edi``, ...). The message
goes on unchanged. ``read`` puts the file's text into the body.

A value from the message cannot move the file elsewhere: a rendered ``name`` holding a path
separator, or a ``dir`` climbing with ``..``, fails the step naming the field.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from pathlib import Path as FsPath
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.plugin import (
    BuildContext,
    Continue,
    Envelope,
    Expr,
    Model,
    Outcome,
    Resources,
    StepError,
    StepFn,
    StepKind,
    Value,
    compile_value,
    result,
)

MAX_READ_BYTES = 50 * 1024 * 1024


class Writing(Model):
    """What a write or put sends: shared by the file and sftp steps."""

    content: Expr | None = Field(None, description="What to write; the body if omitted. Text "
                                 "is written as is, anything else as JSON.")
    encoding: str = Field("utf-8", description="Encoding of the text written, e.g. latin-1.")


class Reading(Model):
    """How a read or get turns bytes into the body: shared by the file and sftp steps."""

    encoding: str = Field("utf-8", description="Encoding of the file's text.")
    max_bytes: int = Field(MAX_READ_BYTES, ge=1, description="Largest file read (bytes).")


class FileWrite(Writing):
    dir: Value = Field(description="Folder; may use ${env:X} and {{ expression }}. Created "
                                   "when missing.")
    name: Value = Field(description="File name; may use {{ expression }}, e.g. "
                                    "'PO_{{ po_number }}.edi'.")
    overwrite: Literal["replace", "fail", "unique"] = Field(
        "replace", description="An existing file: replace it, fail the step, or write under "
                               "a unique name (NAME.1.ext, ...).")


class FileRead(Reading):
    path: Value = Field(description="File to read; may use ${env:X} and {{ expression }}.")


class FileStep(Model):
    write: FileWrite | None = Field(None, description="Write a file atomically (temp, rename).")
    read: FileRead | None = Field(None, description="Read a file's text into the body.")

    @model_validator(mode="after")
    def _one(self) -> FileStep:
        if (self.write is None) == (self.read is None):
            raise ValueError("give exactly one of 'write:' or 'read:'")
        return self


def encodable(value: Any, encoding: str, what: str) -> bytes:
    """*value* as bytes to write: text as is, anything else as JSON; a precise error if the
    text cannot be written in *encoding*."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise StepError(f"{what}: character {text[exc.start]!r} at position {exc.start} cannot "
                        f"be written in {encoding}", kind="invalid_input") from None
    except LookupError:
        raise StepError(f"{what}: unknown encoding '{encoding}'", kind="config") from None


def decoded(data: bytes, encoding: str, what: str) -> str:
    """*data* as text; a precise error (the first bad byte) when it is not *encoding*."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise StepError(f"{what}: not {encoding} text (byte {exc.start}: "
                        f"{data[exc.start:exc.start + 1]!r})", kind="invalid_input") from None
    except LookupError:
        raise StepError(f"{what}: unknown encoding '{encoding}'", kind="config") from None


def safe_path(path: str, field: str) -> str:
    """*path* as rendered; refused when a value from the message made it climb with '..' or
    left it without a file name."""
    if not path or path.endswith("/"):
        raise StepError(f"{field}: '{path}' names no file (is a value in it empty?)",
                        kind="invalid_input")
    if ".." in path.replace("\\", "/").split("/") or "\x00" in path:
        raise StepError(f"{field}: '{path}' leaves its folder ('..'); refused",
                        kind="invalid_input")
    return path


def _file_name(name: str, field: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise StepError(f"{field}: '{name}' is not a file name (no folders, not empty)",
                        kind="invalid_input")
    return name


def _os_error(exc: OSError, what: str) -> StepError:
    if exc.errno == errno.ENOENT:
        return StepError(f"{what}: no such file or folder", kind="not_found")
    if exc.errno == errno.EACCES:
        return StepError(f"{what}: permission denied", kind="permission")
    return StepError(f"{what}: {exc.strerror or exc}", kind="io")


def write_atomic(folder: FsPath, name: str, data: bytes, overwrite: str) -> FsPath:
    """Write *data* to *folder*/*name* through a temp file and a rename; the path written."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.{uuid.uuid4().hex[:12]}.part"
    try:
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return _place(temp, folder / name, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _place(temp: FsPath, target: FsPath, overwrite: str) -> FsPath:
    if overwrite == "replace":
        os.replace(temp, target)
        return target
    for n in range(10_000):
        candidate = target if n == 0 else target.with_name(f"{target.stem}.{n}{target.suffix}")
        try:
            os.link(temp, candidate)  # unlike a rename, a link never replaces a file
            return candidate
        except FileExistsError:
            if overwrite == "fail":
                raise StepError(f"{target} exists already (overwrite: fail)",
                                kind="exists") from None
    raise StepError(f"no free name for {target} after 10000 tries", kind="exists")


def build(config: FileStep, ctx: BuildContext) -> StepFn:
    where = "file"  # the runner names the step and its line
    if config.read is not None:
        return _build_read(config.read, ctx, f"{where}.read")
    write = config.write
    assert write is not None
    dir_of = compile_value(write.dir, ctx, ("write", "dir"))
    name_of = compile_value(write.name, ctx, ("write", "name"))
    content = ctx.expr(write.content, ("write", "content")) if write.content else None

    def file_write(envelope: Envelope, resources: Resources) -> Outcome:
        folder = safe_path(str(dir_of(envelope, resources.secrets)).rstrip("/") or "/",
                           f"{where}.write.dir")
        name = _file_name(str(name_of(envelope, resources.secrets)), f"{where}.write.name")
        value = content.evaluate(envelope) if content is not None else envelope.body
        data = encodable(value, write.encoding, f"{where}.write.content")
        try:
            written = write_atomic(FsPath(folder), name, data, write.overwrite)
        except OSError as exc:
            raise _os_error(exc, f"{where}.write {folder}/{name}") from None
        resources.log.info("file written: %s (%d bytes)", written, len(data))
        return Continue()

    return file_write


def _build_read(read: FileRead, ctx: BuildContext, where: str) -> StepFn:
    path_of = compile_value(read.path, ctx, ("read", "path"))

    def file_read(envelope: Envelope, resources: Resources) -> Outcome:
        path = FsPath(safe_path(str(path_of(envelope, resources.secrets)), f"{where}.path"))
        try:
            size = path.stat().st_size
            if size > read.max_bytes:
                raise StepError(f"{where} {path}: {size} bytes, more than max_bytes "
                                f"{read.max_bytes}", kind="too_large")
            data = path.read_bytes()
        except OSError as exc:
            raise _os_error(exc, f"{where} {path}") from None
        return result(decoded(data, read.encoding, f"{where} {path}"))

    return file_read


STEP = StepKind(name="file", config=FileStep, build=build,
                description="Write a local file atomically (temp file, then rename; folder and "
                            "name templates; overwrite: replace, fail or unique) or read one "
                            "into the body.",
                side_effect=True)
