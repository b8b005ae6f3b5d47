"""The matmul kind: shared vectors, tolerant agreement, validation, and split/assemble.

The vectors file is shared with the JavaScript miner; a failure there means the
two implementations would stop agreeing on the wire format, not just that
Python changed.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qortex.core.kinds import Kind, KindRegistry
from qortex.errors import ConfigError, InvalidInput
from qortex.kinds.matmul import (
    MatmulKind,
    create,
    decode_matrix,
    encode_matrix,
    result_bytes,
)
from qortex.settings import Settings

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "matmul.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kind() -> MatmulKind:
    return MatmulKind()


def compact(matrix: Any) -> dict[str, Any]:
    return encode_matrix(np.asarray(matrix, dtype=np.float64))


def raw_compact(rows: int, cols: int, values: list[float]) -> dict[str, Any]:
    data = np.array(values, dtype="<f8").tobytes()
    return {"rows": rows, "cols": cols, "data": base64.b64encode(data).decode()}


def run(kind: MatmulKind, task_input: Any) -> Any:
    """What the coordinator does, minus the miners: validate, split, compute, assemble."""
    normalised = json.loads(json.dumps(kind.validate(task_input)))  # stored as JSON
    outputs = [kind.compute(json.loads(json.dumps(mt))) for mt in kind.split(normalised)]
    return kind.assemble(normalised, json.loads(json.dumps(outputs)))


# -- vectors --------------------------------------------------------------


def test_vectors_file_is_well_formed() -> None:
    assert len(VECTORS) >= 6
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    for vector in VECTORS:
        assert set(vector) == {"name", "input", "output"}
        assert set(vector["input"]) == {"i", "j", "a", "b"}
        for matrix in (vector["input"]["a"], vector["input"]["b"], vector["output"]):
            assert set(matrix) == {"rows", "cols", "data"}
        out = vector["output"]
        assert (out["rows"], out["cols"]) == (
            vector["input"]["a"]["rows"],
            vector["input"]["b"]["cols"],
        )
    shapes = {(v["output"]["rows"], v["output"]["cols"]) for v in VECTORS}
    assert (1, 1) in shapes and (16, 16) in shapes


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector(kind: MatmulKind, vector: dict[str, Any]) -> None:
    output = kind.compute(vector["input"])
    assert set(output) == {"rows", "cols", "data"}
    assert kind.agree(output, vector["output"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_a_plain_loop_like_the_browsers_agrees_with_each_vector(
    kind: MatmulKind, vector: dict[str, Any]
) -> None:
    """A miner summing left to right in plain floats (as JavaScript does) must still agree."""
    a = decode_matrix(vector["input"]["a"], "a").tolist()
    b = decode_matrix(vector["input"]["b"], "b").tolist()
    product = [
        [sum(a[r][k] * b[k][c] for k in range(len(b))) for c in range(len(b[0]))]
        for r in range(len(a))
    ]
    assert kind.agree(compact(product), vector["output"])


def test_vector_blocks_fit_together() -> None:
    for vector in VECTORS:
        mt = vector["input"]
        a = decode_matrix(mt["a"], "a")
        b = decode_matrix(mt["b"], "b")
        assert a.shape[1] == b.shape[0]
        assert isinstance(mt["i"], int) and mt["i"] >= 0
        assert isinstance(mt["j"], int) and mt["j"] >= 0


# -- agree ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tile() -> np.ndarray:
    return np.random.default_rng(7).uniform(-100, 100, (5, 4))


def test_agree_accepts_itself_and_tiny_perturbations(kind: MatmulKind, tile: np.ndarray) -> None:
    assert kind.agree(compact(tile), compact(tile))
    assert kind.agree(compact(tile), compact(tile * (1 + 1e-12)))
    assert kind.agree(compact(tile), compact(np.nextafter(tile, np.inf)))
    nudged = tile.copy()
    nudged[2, 3] += 1e-9  # absolute noise well under 1e-9 * max|tile|
    assert kind.agree(compact(tile), compact(nudged))


def test_agree_rejects_larger_differences(kind: MatmulKind, tile: np.ndarray) -> None:
    assert not kind.agree(compact(tile), compact(tile * (1 + 1e-6)))
    changed = tile.copy()
    changed[0, 0] += 1e-3
    assert not kind.agree(compact(tile), compact(changed))


def test_agree_scales_the_absolute_tolerance_by_the_largest_value(kind: MatmulKind) -> None:
    big = np.array([[1e12, 0.0]])
    assert kind.agree(compact(big), compact([[1e12, 1e-4]]))  # noise after cancellation
    assert not kind.agree(compact(big), compact([[1e12, 1e4]]))
    small = np.array([[1e-3, 0.0]])
    assert kind.agree(compact(small), compact([[1e-3, 1e-10]]))  # atol never below 1e-9
    assert not kind.agree(compact(small), compact([[1e-3, 1e-8]]))


def test_agree_rejects_other_shapes(kind: MatmulKind, tile: np.ndarray) -> None:
    assert not kind.agree(compact(tile), compact(tile.T))
    assert not kind.agree(compact(tile), compact(tile[:4]))
    flat = raw_compact(20, 1, tile.ravel().tolist())
    assert not kind.agree(compact(tile), flat)


def test_agree_rejects_nan_and_infinity(kind: MatmulKind, tile: np.ndarray) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        values = tile.ravel().tolist()
        values[3] = bad
        spoiled = raw_compact(5, 4, values)
        assert not kind.agree(compact(tile), spoiled)
        assert not kind.agree(spoiled, compact(tile))
        assert not kind.agree(spoiled, spoiled)


@pytest.mark.parametrize(
    "malformed",
    [
        None,
        "oops",
        42,
        True,
        [],
        [[1.0]],  # list form is for clients; miners answer compact
        {},
        {"rows": 1, "cols": 1},
        {"rows": 1, "cols": 1, "data": "AAAAAAAA8D8"},  # missing padding
        {"rows": 1, "cols": 1, "data": "AAAAAAAA8D8A"},  # length not rows*cols*8
        {"rows": 1, "cols": 1, "data": "AAAAAAAA8D8=", "extra": 1},
        {"rows": "1", "cols": 1, "data": "AAAAAAAA8D8="},
        {"rows": 0, "cols": 0, "data": ""},
        {"rows": 1, "cols": 1, "data": "!!!!!!!!!!!="},
        {"rows": 1, "cols": 1, "data": 5},
        {"rows": True, "cols": 1, "data": "AAAAAAAA8D8="},
        {"rows": 10**30, "cols": 10**30, "data": "AAAAAAAA8D8="},
    ],
)
def test_malformed_outputs_agree_with_nothing(kind: MatmulKind, malformed: Any) -> None:
    one = compact([[1.0]])
    assert not kind.agree(one, malformed)
    assert not kind.agree(malformed, one)
    assert not kind.agree(malformed, malformed)


# -- validation -----------------------------------------------------------


def refused(kind: MatmulKind, task_input: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        kind.validate(task_input)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("task_input", "field", "words"),
    [
        ([[1.0]], "input", "must be an object"),
        ("a", "input", "must be an object"),
        ({"b": [[1]]}, "a", "missing 'a'"),
        ({"a": [[1]]}, "b", "missing 'b'"),
        ({"a": [[1]], "b": [[1]], "tiles": 8}, "tiles", "unknown key(s) tiles"),
        ({"a": "x", "b": [[1]]}, "a", "must be a matrix"),
        ({"a": [[1]], "b": 3}, "b", "must be a matrix"),
        ({"a": [], "b": [[1]]}, "a", "must not be empty"),
        ({"a": [[]], "b": [[1]]}, "a[0]", "must not be empty"),
        ({"a": [[1], [2], [3], [4, 5]], "b": [[1]]}, "a[3]", "rows must be the same length"),
        ({"a": [[1, 2], [3]], "b": [[1]]}, "a[1]", "has 1 values but a[0] has 2"),
        ({"a": [1, 2], "b": [[1]]}, "a[0]", "must be a list of numbers"),
        ({"a": [[1], 2], "b": [[1]]}, "a[1]", "must be a list of numbers"),
        ({"a": [[1]], "b": [[1, "2"]]}, "b[0][1]", "must be a number, got '2'"),
        ({"a": [[1]], "b": [[True]]}, "b[0][0]", "must be a number, got True"),
        ({"a": [[None]], "b": [[1]]}, "a[0][0]", "must be a number, got None"),
        ({"a": [[1, [2]]], "b": [[1]]}, "a[0][1]", "must be a number"),
        ({"a": [[math.nan]], "b": [[1]]}, "a", "only finite numbers"),
        ({"a": [[1]], "b": [[-math.inf]]}, "b", "only finite numbers"),
        ({"a": [[10**400]], "b": [[1]]}, "a", "only finite numbers"),
        ({"a": {"rows": 1, "cols": 1}, "b": [[1]]}, "a.data", "missing 'data'"),
        ({"a": {"cols": 1, "data": ""}, "b": [[1]]}, "a.rows", "missing 'rows'"),
        (
            {"a": {"rows": 1, "cols": 1, "data": "AAAAAAAA8D8=", "dtype": "f8"}, "b": [[1]]},
            "a",
            "unknown key(s) dtype",
        ),
        ({"a": {"rows": 0, "cols": 1, "data": ""}, "b": [[1]]}, "a.rows", "positive integer"),
        ({"a": {"rows": 1, "cols": 1.0, "data": ""}, "b": [[1]]}, "a.cols", "positive integer"),
        ({"a": {"rows": True, "cols": 1, "data": ""}, "b": [[1]]}, "a.rows", "positive integer"),
        ({"a": {"rows": 1, "cols": 1, "data": 7}, "b": [[1]]}, "a.data", "base64 string"),
        (
            {"a": [[1]], "b": {"rows": 1, "cols": 1, "data": "AAAAAAAA8D8"}},
            "b.data",
            "not standard base64",
        ),
        (
            {"a": [[1]], "b": {"rows": 1, "cols": 1, "data": "AAAAAAAA-D8="}},
            "b.data",
            "not standard base64",
        ),
        (
            {"a": [[1]], "b": {"rows": 1, "cols": 1, "data": "AAAA AAAA8D8="}},
            "b.data",
            "not standard base64",
        ),
        (
            {"a": [[1]], "b": {"rows": 1, "cols": 1, "data": "\u00e9\u00e9\u00e9\u00e9"}},
            "b.data",
            "not standard base64",
        ),
        (
            {"a": [[1]], "b": {"rows": 1, "cols": 2, "data": "AAAAAAAA8D8="}},
            "b.data",
            "holds 8 bytes; 1x2 float64 values need 16",
        ),
        ({"a": [[1]], "b": raw_compact(1, 1, [math.nan])}, "b", "only finite numbers"),
        ({"a": raw_compact(1, 2, [1.0, math.inf]), "b": [[1]]}, "a", "only finite numbers"),
        (
            {"a": [[1, 2, 3, 4]] * 3, "b": [[1, 2]] * 5},
            "b",
            "a is 3x4 but b is 5x2: a's columns must equal b's rows",
        ),
        ({"a": [[1]], "b": [[1]], "tile": 7}, "tile", "integer from 8 to 512, got 7"),
        ({"a": [[1]], "b": [[1]], "tile": 513}, "tile", "got 513"),
        ({"a": [[1]], "b": [[1]], "tile": 64.0}, "tile", "got 64.0"),
        ({"a": [[1]], "b": [[1]], "tile": "64"}, "tile", "got '64'"),
        ({"a": [[1]], "b": [[1]], "tile": True}, "tile", "got True"),
        ({"a": [[1]], "b": [[1]], "tile": None}, "tile", "got None"),
        ({"a": [[1e200]], "b": [[1e200]]}, "input", "may overflow"),
    ],
)
def test_validation_errors(kind: MatmulKind, task_input: Any, field: str, words: str) -> None:
    error = refused(kind, task_input)
    assert words in error.message
    assert error.detail == {"field": field}


def test_dimension_limit_for_both_forms() -> None:
    kind = MatmulKind(max_dim=4, max_elements=100)
    error = refused(kind, {"a": [[1.0] * 5], "b": [[1.0]] * 5})
    assert error.detail == {"field": "a"}
    assert error.message == "a is 1x5: at most 4 rows and 4 columns"
    error = refused(kind, {"a": [[1.0]], "b": [[1.0]] * 5})
    assert error.detail == {"field": "b"}
    assert "b is 5x1" in error.message
    # Compact form: refused from the declared shape, before the data is even looked at.
    error = refused(kind, {"a": {"rows": 10**9, "cols": 1, "data": ""}, "b": [[1.0]]})
    assert error.detail == {"field": "a"} and "at most 4 rows" in error.message


def test_default_dimension_limit_is_2048(kind: MatmulKind) -> None:
    assert kind.max_dim == 2048 and kind.max_elements == 1_048_576
    error = refused(kind, {"a": {"rows": 2049, "cols": 1, "data": ""}, "b": [[1.0]]})
    assert error.message == "a is 2049x1: at most 2048 rows and 2048 columns"
    ok = kind.validate({"a": np.ones((2048, 1)).tolist(), "b": [[2.0]]})
    assert ok["a"]["rows"] == 2048


def test_element_limit_for_both_forms() -> None:
    kind = MatmulKind(max_dim=100, max_elements=12)
    error = refused(kind, {"a": [[1.0] * 4] * 4, "b": [[1.0]] * 4})
    assert error.detail == {"field": "a"}
    assert error.message == "a is 4x4 = 16 elements: at most 12"
    error = refused(kind, {"a": [[1.0] * 13], "b": compact(np.ones((13, 1)))})
    assert error.detail == {"field": "a"}
    error = refused(kind, {"a": [[1.0]], "b": {"rows": 1, "cols": 13, "data": ""}})
    assert error.detail == {"field": "b"} and "13 elements" in error.message
    # exactly at the limit is fine
    assert kind.validate({"a": [[1.0] * 12], "b": [[1.0]] * 12})["a"]["cols"] == 12


def test_default_element_limit(kind: MatmulKind) -> None:
    error = refused(kind, {"a": {"rows": 1025, "cols": 1024, "data": ""}, "b": [[1.0]]})
    assert error.message == "a is 1025x1024 = 1049600 elements: at most 1048576"


def test_validate_normalises_to_compact_json(kind: MatmulKind) -> None:
    task = kind.validate({"a": [[1, 2.5], [-3, 4]], "b": [[1], [0]]})
    assert task == {
        "a": raw_compact(2, 2, [1.0, 2.5, -3.0, 4.0]),
        "b": raw_compact(2, 1, [1.0, 0.0]),
        "tile": 64,
        "form": "lists",
    }
    assert json.loads(json.dumps(task)) == task
    given = kind.validate({"a": raw_compact(1, 2, [1.0, 2.0]), "b": [[1.0], [2.0]], "tile": 8})
    assert given["form"] == "compact" and given["tile"] == 8
    assert given["a"] == raw_compact(1, 2, [1.0, 2.0])
    # the form follows a, whatever b is
    assert kind.validate({"a": [[1.0]], "b": compact([[2.0]])})["form"] == "lists"


def test_tiles_whose_result_would_not_fit_a_miner_message_are_refused() -> None:
    kind = MatmulKind(max_result_bytes=result_bytes(16, 16))
    square = {"a": np.ones((20, 3)).tolist(), "b": np.ones((3, 20)).tolist()}
    assert kind.validate({**square, "tile": 16})["tile"] == 16
    error = refused(kind, {**square, "tile": 17})
    assert error.detail == {"field": "tile"}
    assert f"a 17x17 tile's result takes {result_bytes(17, 17)} bytes" in error.message
    assert "use a smaller tile" in error.message
    # Only the largest tile the product really has counts: a thin product fits.
    thin = {"a": np.ones((20, 3)).tolist(), "b": np.ones((3, 2)).tolist(), "tile": 64}
    assert kind.validate(thin)["tile"] == 64


def test_result_bytes_bounds_the_real_result_frame() -> None:
    from qortex.protocol import messages as m

    for rows, cols in [(1, 1), (8, 3), (64, 64), (313, 313)]:
        output = json.dumps(compact(np.ones((rows, cols))), separators=(",", ":"))
        frame = m.encoder.encode(m.Result("a" * 40, "f" * 36 + ":99999", output, "0" * 128))
        assert len(frame) <= result_bytes(rows, cols)
    # With the default 1 MiB message limit the largest usable tile is 313.
    assert result_bytes(313, 313) <= Settings().max_message_bytes < result_bytes(314, 314)


def test_create_limits_tiles_by_the_message_setting() -> None:
    kind = create(Settings())
    assert kind.max_result_bytes == Settings().max_message_bytes
    big = {"a": compact(np.ones((400, 2))), "b": compact(np.ones((2, 400)))}
    assert refused(kind, {**big, "tile": 512}).detail == {"field": "tile"}
    assert kind.validate({**big, "tile": 256})["tile"] == 256


def test_constructor_refuses_bad_limits() -> None:
    for tile in (7, 513, 0):
        with pytest.raises(ConfigError, match="between 8 and 512"):
            MatmulKind(tile=tile)
    with pytest.raises(ConfigError):
        MatmulKind(max_dim=0)
    with pytest.raises(ConfigError):
        MatmulKind(max_elements=0)


def test_compute_refuses_mismatched_blocks(kind: MatmulKind) -> None:
    with pytest.raises(InvalidInput, match="a's columns must equal b's rows"):
        kind.compute({"i": 0, "j": 0, "a": compact([[1.0, 2.0]]), "b": compact([[1.0]])})
    with pytest.raises(InvalidInput):
        kind.compute({"a": compact([[1.0]])})


# -- split and assemble ---------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "m", "t"),
    [
        (1, 1, 1, 8),
        (8, 3, 8, 8),
        (9, 5, 17, 8),
        (20, 12, 19, 8),
        (64, 10, 130, 64),
        (3, 4, 100, 16),
    ],
)
def test_split_tiles_the_product_row_major(
    kind: MatmulKind, n: int, k: int, m: int, t: int
) -> None:
    rng = np.random.default_rng(n * 1000 + m)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    microtasks = kind.split(kind.validate({"a": a.tolist(), "b": b.tolist(), "tile": t}))
    across = math.ceil(m / t)
    assert len(microtasks) == math.ceil(n / t) * across
    for index, mt in enumerate(microtasks):
        assert set(mt) == {"i", "j", "a", "b"}
        i, j = divmod(index, across)
        assert (mt["i"], mt["j"]) == (i, j)
        assert set(mt["a"]) == set(mt["b"]) == {"rows", "cols", "data"}
        assert np.array_equal(decode_matrix(mt["a"], "a"), a[i * t : (i + 1) * t, :])
        assert np.array_equal(decode_matrix(mt["b"], "b"), b[:, j * t : (j + 1) * t])
        assert json.loads(json.dumps(mt)) == mt


def test_split_edge_tiles_are_smaller(kind: MatmulKind) -> None:
    a, b = np.ones((20, 3)), np.ones((3, 19))
    microtasks = kind.split(kind.validate({"a": a.tolist(), "b": b.tolist(), "tile": 8}))
    shapes = [(mt["a"]["rows"], mt["b"]["cols"]) for mt in microtasks]
    assert shapes == [(8, 8), (8, 8), (8, 3), (8, 8), (8, 8), (8, 3), (4, 8), (4, 8), (4, 3)]


def test_lists_in_lists_out(kind: MatmulKind) -> None:
    output = run(kind, {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]})
    assert output == [[19.0, 22.0], [43.0, 50.0]]
    assert all(type(x) is float for row in output for x in row)


def test_compact_in_compact_out(kind: MatmulKind) -> None:
    output = run(kind, {"a": compact([[1, 2], [3, 4]]), "b": [[5, 6], [7, 8]]})
    assert output == compact([[19.0, 22.0], [43.0, 50.0]])


@pytest.mark.parametrize("form", ["lists", "compact"])
@pytest.mark.parametrize(("n", "k", "m", "t"), [(37, 23, 41, 8), (100, 7, 9, 16), (5, 300, 70, 64)])
def test_split_compute_assemble_equals_numpy(
    kind: MatmulKind, form: str, n: int, k: int, m: int, t: int
) -> None:
    rng = np.random.default_rng(n + k + m)
    a, b = rng.uniform(-5, 5, (n, k)), rng.uniform(-5, 5, (k, m))
    wire = (lambda x: x.tolist()) if form == "lists" else encode_matrix
    output = run(kind, {"a": wire(a), "b": wire(b), "tile": t})
    product = np.array(output) if form == "lists" else decode_matrix(output, "output")
    assert product.shape == (n, m)
    assert np.allclose(product, a @ b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("form", ["lists", "compact"])
def test_256_by_256_in_16_tiles(kind: MatmulKind, form: str) -> None:
    rng = np.random.default_rng(256)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    wire = (lambda x: x.tolist()) if form == "lists" else encode_matrix
    task = kind.validate({"a": wire(a), "b": wire(b), "tile": 64})
    assert task["form"] == form
    assert len(kind.split(task)) == 16
    output = run(kind, {"a": wire(a), "b": wire(b), "tile": 64})
    product = np.array(output) if form == "lists" else decode_matrix(output, "output")
    assert np.allclose(product, a @ b, rtol=1e-9, atol=1e-9)


def test_assemble_refuses_a_tile_of_the_wrong_shape(kind: MatmulKind) -> None:
    task = kind.validate(
        {"a": np.ones((10, 2)).tolist(), "b": np.ones((2, 10)).tolist(), "tile": 8}
    )
    outputs = [kind.compute(mt) for mt in kind.split(task)]
    outputs[3] = compact(np.ones((2, 3)))
    with pytest.raises(ValueError, match="tile 1,1 is 2x3, expected 2x2"):
        kind.assemble(task, outputs)


# -- encoding -------------------------------------------------------------


def test_compact_round_trip() -> None:
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (3, 7), (64, 64), (1, 100)]:
        matrix = rng.standard_normal(shape) * 10.0 ** rng.integers(-300, 300, shape)
        encoded = encode_matrix(matrix)
        assert (encoded["rows"], encoded["cols"]) == shape
        assert np.array_equal(decode_matrix(encoded, "m"), matrix)  # bit for bit
    # little-endian float64, row-major, padded standard base64
    assert encode_matrix(np.array([[1.0, -2.0]])) == {
        "rows": 1,
        "cols": 2,
        "data": base64.b64encode(bytes.fromhex("000000000000f03f00000000000000c0")).decode(),
    }
    assert encode_matrix(np.array([[0.5]]))["data"] == "AAAAAAAA4D8="


def test_encode_handles_views_and_other_dtypes() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    view = base[:, 1:4]  # not contiguous
    assert np.array_equal(decode_matrix(encode_matrix(view), "v"), view)
    assert encode_matrix(np.array([[1, 2]], dtype=np.int32)) == encode_matrix(
        np.array([[1.0, 2.0]])
    )
    with pytest.raises(ValueError):
        encode_matrix(np.ones(3))


def test_decode_matrix_names_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        decode_matrix([[1, 2], [3]], "weights")
    assert info.value.detail == {"field": "weights[1]"}


# -- plumbing -------------------------------------------------------------


def test_create_reads_the_tile_setting() -> None:
    assert create(Settings(matmul_tile=32)).tile == 32
    assert create(Settings()).tile == 64
    task = create(Settings(matmul_tile=32)).validate(
        {"a": np.ones((64, 2)).tolist(), "b": [[1.0]] * 2}
    )
    assert task["tile"] == 32


def test_setting_is_range_checked() -> None:
    for tile in (7, 513):
        with pytest.raises(ConfigError, match="matmul_tile"):
            Settings(matmul_tile=tile)


def test_kind_interface_and_browser_module(kind: MatmulKind) -> None:
    assert isinstance(kind, Kind)
    assert kind.name == "matmul"
    assert kind.browser_module is not None and kind.browser_module.name == "matmul.js"
    assert list(KindRegistry([kind])) == ["matmul"]


def test_registered_through_the_entry_point() -> None:
    from qortex.plugins import load_kinds

    registry = load_kinds(Settings(matmul_tile=16))
    matmul = registry.get("matmul")
    assert isinstance(matmul, MatmulKind) and matmul.tile == 16


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_the_check_takes_the_prepared_matrices_or_the_json(
    kind: MatmulKind, vector: dict[str, Any]
) -> None:
    prepared = kind.prepare(vector["input"])
    assert kind.check(prepared, vector["output"]) and kind.check(vector["input"], vector["output"])
    wrong = compact((decode_matrix(vector["output"], "output") * 1.5 + 1.0).tolist())
    assert not kind.check(prepared, wrong) and not kind.check(vector["input"], wrong)
