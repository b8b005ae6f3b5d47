"""The ``matmul`` kind: C = A·B, sharded into tiles of C (Distributed Brain's matrix jobs).

Each microtask computes one ``tile`` by ``tile`` block of the product (edge tiles
are smaller) from the block of A's rows and the block of B's columns it needs,
so microtasks are independent and a miner never sees the whole matrices.

Miners add up products in different orders (BLAS blocking, SIMD width, a
browser's plain loop), and floating-point addition is not associative, so two
honest answers can differ in the last bits. ``agree`` therefore compares with a
tolerance instead of demanding identical JSON: two tiles agree when both are
compact, finite and of one shape, and every entry satisfies
``|x - y| <= atol + rtol * |y|`` (NumPy's ``allclose``) with ``rtol = 1e-9`` and
``atol = 1e-9 * max(1, max|x|, max|y|)``.

Matrix on the wire, two forms:

* nested lists of rows, ``[[1.0, 2.0], [3.0, 4.0]]`` (ints allowed, every row
  the same length), readable and easy to send from any client;
* compact, ``{"rows": r, "cols": c, "data": "<base64>"}``, where ``data`` is
  standard base64 (with ``=`` padding) of ``r*c`` IEEE-754 float64 values,
  little-endian, row-major. Exact (no decimal round trip) and about half the
  size of decimal text, so microtasks and results always use it.

A task input is ``{"a": Matrix, "b": Matrix, "tile"?: int}``; the output has
the form of ``a``. A microtask input is ``{"i", "j", "a", "b"}``: tile row
``i``, tile column ``j``, A's rows ``i*tile`` up to ``(i+1)*tile`` and B's
columns ``j*tile`` up to ``(j+1)*tile``, both compact; its output is the
compact product of the two blocks. ``tests/vectors/matmul.json`` pins this
format down for the browser miner.
"""

from __future__ import annotations

import base64
import binascii
import math
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import numpy as np

from qortex.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from qortex.settings import Settings

#: Tile sizes accepted, from the task input or the ``matmul_tile`` setting. Below
#: 8 the per-microtask overhead dwarfs the arithmetic; above 512 one microtask
#: carries megabytes and takes a browser tab seconds.
MIN_TILE = 8
MAX_TILE = 512

#: Relative tolerance of ``agree``; the absolute one is this times the largest
#: magnitude in either tile, so near-zero entries (where cancellation leaves
#: only rounding noise) are judged against the tile's scale, not their own.
RTOL = 1e-9

_FLOAT64 = np.dtype("<f8")
_COMPACT_KEYS = frozenset({"rows", "cols", "data"})
_TASK_KEYS = frozenset({"a", "b", "tile"})
_MICROTASK_KEYS = frozenset({"i", "j", "a", "b"})
_FLOAT_MAX = float(np.finfo(np.float64).max)
_RESULT_FRAME_BYTES = 1024


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python but a different JSON type: never a number here.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def encode_matrix(matrix: np.ndarray) -> dict[str, Any]:
    """The compact form of a 2-D array: little-endian float64, row-major, padded base64."""
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array, got {matrix.ndim} dimension(s)")
    rows, cols = matrix.shape
    raw = np.ascontiguousarray(matrix, dtype=_FLOAT64).tobytes(order="C")
    return {"rows": int(rows), "cols": int(cols), "data": base64.b64encode(raw).decode("ascii")}


def _check_size(
    rows: int, cols: int, field: str, max_dim: int | None, max_elements: int | None
) -> None:
    """Limits are checked from the declared shape, before any memory is spent on the data."""
    if max_dim is not None and (rows > max_dim or cols > max_dim):
        raise InvalidInput(
            f"{field} is {rows}x{cols}: at most {max_dim} rows and {max_dim} columns",
            field=field,
        )
    if max_elements is not None and rows * cols > max_elements:
        raise InvalidInput(
            f"{field} is {rows}x{cols} = {rows * cols} elements: at most {max_elements}",
            field=field,
        )


def _decode_lists(
    value: list[Any], field: str, max_dim: int | None, max_elements: int | None
) -> np.ndarray:
    if not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    first = value[0]
    cols = len(first) if isinstance(first, list) else 0
    # Refuse oversized input before walking a million elements of it.
    _check_size(len(value), max(cols, 1), field, max_dim, max_elements)
    for r, row in enumerate(value):
        where = f"{field}[{r}]"
        if not isinstance(row, list):
            raise InvalidInput(f"{where} must be a list of numbers (a row)", field=where)
        if not row:
            raise InvalidInput(f"{where} must not be empty", field=where)
        if len(row) != cols:
            raise InvalidInput(
                f"{where} has {len(row)} values but {field}[0] has {cols}: rows must be"
                " the same length",
                field=where,
            )
        # The exact-type test is the fast path over a whole row; the slow one names the culprit.
        if not all(type(x) is float or type(x) is int for x in row):
            culprit = next(((c, x) for c, x in enumerate(row) if not _is_number(x)), None)
            if culprit is not None:
                c, bad = culprit
                raise InvalidInput(
                    f"{where}[{c}] must be a number, got {bad!r}", field=f"{where}[{c}]"
                )
    try:
        matrix = np.array(value, dtype=_FLOAT64)
    except OverflowError:  # an int too large for a float64
        matrix = None
    if matrix is None or not np.isfinite(matrix).all():
        raise InvalidInput(
            f"{field} must hold only finite numbers (no NaN or infinity)", field=field
        )
    return matrix


def _decode_compact(
    value: dict[str, Any], field: str, max_dim: int | None, max_elements: int | None
) -> np.ndarray:
    for key in ("rows", "cols", "data"):
        if key not in value:
            raise InvalidInput(f"{field} is missing '{key}'", field=f"{field}.{key}")
    unknown = sorted(str(k) for k in set(value) - _COMPACT_KEYS)
    if unknown:
        raise InvalidInput(
            f"{field} has unknown key(s) {', '.join(unknown)}: expected rows, cols and data",
            field=field,
        )
    rows, cols, data = value["rows"], value["cols"], value["data"]
    for key, number in (("rows", rows), ("cols", cols)):
        if not _is_int(number) or number < 1:
            raise InvalidInput(
                f"{field}.{key} must be a positive integer, got {number!r}",
                field=f"{field}.{key}",
            )
    _check_size(rows, cols, field, max_dim, max_elements)
    if not isinstance(data, str):
        raise InvalidInput(f"{field}.data must be a base64 string", field=f"{field}.data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"{field}.data is not standard base64 (A-Z a-z 0-9 + /, '=' padding)",
            field=f"{field}.data",
        ) from None
    if len(raw) != rows * cols * 8:
        raise InvalidInput(
            f"{field}.data holds {len(raw)} bytes; {rows}x{cols} float64 values need"
            f" {rows * cols * 8}",
            field=f"{field}.data",
        )
    matrix = np.frombuffer(raw, dtype=_FLOAT64).reshape(rows, cols)
    if not np.isfinite(matrix).all():
        raise InvalidInput(
            f"{field} must hold only finite numbers (no NaN or infinity)", field=field
        )
    return matrix


def decode_matrix(
    value: Any, field: str, *, max_dim: int | None = None, max_elements: int | None = None
) -> np.ndarray:
    """A float64 array from either wire form; ``InvalidInput`` naming ``field`` if it is not one.

    The array is read-only when it comes from the compact form (it shares the
    decoded bytes); copy it before writing to it.
    """
    if isinstance(value, list):
        return _decode_lists(value, field, max_dim, max_elements)
    if isinstance(value, dict):
        return _decode_compact(value, field, max_dim, max_elements)
    raise InvalidInput(
        f"{field} must be a matrix: a list of rows or {{rows, cols, data}}", field=field
    )


def result_bytes(rows: int, cols: int) -> int:
    """A safe upper bound on the result message carrying a ``rows``x``cols`` tile.

    The compact output's JSON text, plus room for the frame around it (type,
    ids, the 128-character signature and the escaping of the output's quotes).
    """
    output = len(f'{{"rows":{rows},"cols":{cols},"data":""}}') + 4 * math.ceil(rows * cols * 8 / 3)
    return output + _RESULT_FRAME_BYTES


def _decode_output(value: Any) -> np.ndarray | None:
    """A miner's tile, or ``None`` if it is anything but a well-formed finite compact matrix."""
    if not isinstance(value, dict):
        return None
    try:
        return decode_matrix(value, "output")
    except Exception:  # agree must never raise, whatever a miner sends
        return None


#: Random vectors per Freivalds check.
CHECK_VECTORS = 2


class MatmulKind:
    name = "matmul"
    browser_module = files("qortex.kinds").joinpath("matmul.js")
    cost = 20.0  # credit per accepted result

    def __init__(
        self,
        tile: int = 64,
        max_dim: int = 2048,
        max_elements: int = 1_048_576,
        max_result_bytes: int | None = None,
    ) -> None:
        """``max_result_bytes``: the largest result message a miner may send, if limited.

        A tile's output travels back in one WebSocket message, so a tile too
        big for that limit could never be returned; ``create`` passes the
        ``max_message_bytes`` setting so such tasks are refused up front.
        """
        if not _is_int(tile) or not MIN_TILE <= tile <= MAX_TILE:
            raise ConfigError(f"matmul tile must be between {MIN_TILE} and {MAX_TILE}")
        if max_dim < 1 or max_elements < 1:
            raise ConfigError("matmul max_dim and max_elements must be at least 1")
        self.tile = tile
        self.max_dim = max_dim
        self.max_elements = max_elements
        self.max_result_bytes = max_result_bytes

    def validate(self, task_input: Any) -> dict[str, Any]:
        """Check both matrices and the tile; return them compact, with the form to answer in.

        Everything a miner could trip over is refused here, before anything is
        stored: a task that is accepted always splits into well-formed tiles.
        """
        if not isinstance(task_input, dict):
            raise InvalidInput(
                "task input must be an object with matrices 'a' and 'b'", field="input"
            )
        for key in ("a", "b"):
            if key not in task_input:
                raise InvalidInput(f"task input is missing '{key}'", field=key)
        unknown = sorted(str(k) for k in set(task_input) - _TASK_KEYS)
        if unknown:
            # A misspelt "tile" would otherwise be ignored without a word.
            raise InvalidInput(
                f"unknown key(s) {', '.join(unknown)}: expected a, b and tile", field=unknown[0]
            )
        limits = {"max_dim": self.max_dim, "max_elements": self.max_elements}
        a = decode_matrix(task_input["a"], "a", **limits)
        b = decode_matrix(task_input["b"], "b", **limits)
        tile = task_input.get("tile", self.tile)
        if not _is_int(tile) or not MIN_TILE <= tile <= MAX_TILE:
            raise InvalidInput(
                f"tile must be an integer from {MIN_TILE} to {MAX_TILE}, got {tile!r}",
                field="tile",
            )
        (n, k), (k2, m) = a.shape, b.shape
        if k != k2:
            raise InvalidInput(
                f"a is {n}x{k} but b is {k2}x{m}: a's columns must equal b's rows", field="b"
            )
        if self.max_result_bytes is not None:
            rows, cols = min(tile, n), min(tile, m)
            size = result_bytes(rows, cols)
            if size > self.max_result_bytes:
                raise InvalidInput(
                    f"a {rows}x{cols} tile's result takes {size} bytes, over the"
                    f" {self.max_result_bytes}-byte limit on a miner's message: use a smaller tile",
                    field="tile",
                )
        # Every entry of C is bounded by k * max|a| * max|b|. Past float64's range
        # miners would answer inf, which never agrees: the task would only fail
        # after burning every replica, so refuse it now.
        bound = float(np.abs(a).max()) * float(np.abs(b).max())
        if math.isinf(bound) or bound * k > _FLOAT_MAX:
            raise InvalidInput(
                "a and b hold values so large that their product may overflow float64",
                field="input",
            )
        return {
            "a": encode_matrix(a),
            "b": encode_matrix(b),
            "tile": tile,
            "form": "lists" if isinstance(task_input["a"], list) else "compact",
        }

    def split(self, task_input: dict[str, Any]) -> list[dict[str, Any]]:
        """One microtask per tile of C, row-major, each carrying only the blocks it needs."""
        a = decode_matrix(task_input["a"], "a")
        b = decode_matrix(task_input["b"], "b")
        t = task_input["tile"]
        row_blocks = [encode_matrix(a[i : i + t, :]) for i in range(0, a.shape[0], t)]
        col_blocks = [encode_matrix(b[:, j : j + t]) for j in range(0, b.shape[1], t)]
        return [
            {"i": i, "j": j, "a": a_block, "b": b_block}
            for i, a_block in enumerate(row_blocks)
            for j, b_block in enumerate(col_blocks)
        ]

    def compute(self, microtask_input: Any) -> dict[str, Any]:
        """The tile ``a @ b``, compact; checked first, since a miner trusts nothing it is sent."""
        if not isinstance(microtask_input, dict) or not set(microtask_input) >= _MICROTASK_KEYS:
            raise InvalidInput("a matmul microtask is an object with i, j, a and b")
        a = decode_matrix(microtask_input["a"], "a")
        b = decode_matrix(microtask_input["b"], "b")
        if a.shape[1] != b.shape[0]:
            raise InvalidInput(
                f"a is {a.shape[0]}x{a.shape[1]} but b is {b.shape[0]}x{b.shape[1]}:"
                " a's columns must equal b's rows",
                field="b",
            )
        return encode_matrix(a @ b)

    def agree(self, x: Any, y: Any) -> bool:
        """Same shape, all finite, and equal within rounding: summation order differs by miner.

        ``rtol`` covers entries of ordinary size; ``atol``, scaled by the
        largest magnitude in either tile, covers entries that cancel to near
        zero, where the rounding error of the large terms is all that is left.
        Anything malformed agrees with nothing, so a bad result only ever
        forms a group of its own.
        """
        first, second = _decode_output(x), _decode_output(y)
        if first is None or second is None or first.shape != second.shape:
            return False
        scale = max(1.0, float(np.abs(first).max()), float(np.abs(second).max()))
        return bool(np.allclose(first, second, rtol=RTOL, atol=RTOL * scale))

    def prepare(self, microtask_input: Any) -> tuple[np.ndarray, np.ndarray]:
        """A microtask's ``a`` and ``b``, decoded once for every result checked against them."""
        return decode_matrix(microtask_input["a"], "a"), decode_matrix(microtask_input["b"], "b")

    def check(self, microtask_input: Any, output: Any) -> bool:
        """Freivalds' check: ``a (b R) == C R`` for a random ``R``, in O(n^2) not O(n^3).

        With Gaussian columns in ``R``, a tile that is wrong anywhere beyond
        rounding passes with probability zero; the miner cannot tell which
        results are checked, nor predict ``R``. ``microtask_input`` is what
        :meth:`prepare` made of it (a tuple), or the JSON value itself (an object).
        """
        tile = _decode_output(output)
        prepared = isinstance(microtask_input, tuple)
        a, b = microtask_input if prepared else self.prepare(microtask_input)
        if tile is None or tile.shape != (a.shape[0], b.shape[1]):
            return False
        r = np.random.default_rng().standard_normal((b.shape[1], CHECK_VECTORS))
        expected, got = a @ (b @ r), tile @ r
        scale = max(1.0, float(np.abs(expected).max()), float(np.abs(got).max()))
        return bool(np.allclose(expected, got, rtol=RTOL, atol=RTOL * scale))

    def assemble(self, task_input: dict[str, Any], outputs: list[Any]) -> Any:
        """Place each decided tile into C; answer in the form the client sent ``a`` in."""
        n, m, t = task_input["a"]["rows"], task_input["b"]["cols"], task_input["tile"]
        tiles_across = -(-m // t)
        product = np.empty((n, m), dtype=_FLOAT64)
        for index, output in enumerate(outputs):
            i, j = divmod(index, tiles_across)
            block = decode_matrix(output, f"outputs[{index}]")
            rows, cols = min(t, n - i * t), min(t, m - j * t)
            if block.shape != (rows, cols):
                # Only a quorum of miners agreeing on a wrong shape gets here.
                raise ValueError(
                    f"tile {i},{j} is {block.shape[0]}x{block.shape[1]}, expected {rows}x{cols}"
                )
            product[i * t : i * t + rows, j * t : j * t + cols] = block
        if task_input["form"] == "lists":
            return product.tolist()
        return encode_matrix(product)


def create(settings: Settings) -> MatmulKind:
    """Build the kind from settings: ``matmul_tile`` is the tile when a task names none."""
    return MatmulKind(tile=settings.matmul_tile, max_result_bytes=settings.max_message_bytes)
