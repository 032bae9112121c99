"""``Module`` and ``Parameter``: registration, walking, casts, hooks, state dicts, printing."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from audioembed.errors import WeightsFormatError
from audioembed.nn import Linear, Module, Parameter, ReLU, Sequential, Tensor, no_grad


class Leaf(Module):
    """A parameter, a persistent buffer and a non-persistent buffer."""

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.weight = Parameter(np.arange(n, dtype=np.float32))
        self.register_buffer("running", np.ones(n, np.float32))
        self.register_buffer("scratch", np.zeros(n, np.float32), persistent=False)
        self.register_buffer("count", np.array([7], np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.weight.data


class Tree(Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Leaf()
        self.b = Sequential(Leaf(2), ReLU())
        self.scale = Parameter(np.float32([2.0]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.a(x) * self.scale.data


# --- Parameter ------------------------------------------------------------------------------------------
def test_parameter_is_an_array_without_copy() -> None:
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = Parameter(data)
    assert np.asarray(p) is data
    assert p.shape == (2, 3) and p.dtype == np.float32
    np.testing.assert_array_equal(np.matmul(p, np.ones(3, np.float32)), [3.0, 12.0])
    assert np.array(p, copy=True) is not data
    assert repr(p) == "Parameter(shape=(2, 3), dtype=float32)"
    assert Parameter([1, 2], dtype=np.float64).dtype == np.float64


def test_parameter_arithmetic_gives_tensors_and_identity_equality() -> None:
    # A Parameter is a leaf Tensor (the autograd contract): arithmetic is recorded, values stay exact.
    p = Parameter(np.float32([1.0, 2.0]))
    for result in (p * 2, 2 * p, p + p, -p, np.ones((3, 2), np.float32) @ p):
        assert isinstance(result, Tensor) and result.grad_fn is not None
    with no_grad():
        assert (p * 2).grad_fn is None
    np.testing.assert_array_equal((p * 2 - p).data, [1.0, 2.0])
    assert p == p and p != Parameter(p.data) and len({p, p}) == 1
    assert p.is_leaf and p.requires_grad and isinstance(p, Tensor)


def test_parameter_rejects_non_float() -> None:
    with pytest.raises(TypeError, match="floating-point array, got dtype int64"):
        Parameter(np.arange(3))


# --- attribute routing and registration -----------------------------------------------------------------
def test_setattr_routes_by_type() -> None:
    tree = Tree()
    assert list(tree._parameters) == ["scale"]
    assert list(tree._modules) == ["a", "b"]
    leaf = tree.a
    assert set(leaf._buffers) == {"running", "scratch", "count"}
    new = np.full(3, 5.0, np.float32)
    leaf.running = new  # an array assigned to an existing buffer name replaces the buffer
    assert leaf._buffers["running"] is new and "running" not in leaf.__dict__
    leaf.running = None
    assert leaf.running is None
    leaf.note = "plain"  # anything else is a plain attribute
    assert leaf.__dict__["note"] == "plain"
    leaf.weight = None  # None is allowed for a registered parameter
    assert leaf._parameters["weight"] is None


def test_assigning_a_module_over_a_method_is_refused() -> None:
    with pytest.raises(ValueError, match="module name 'forward' clashes with an existing attribute of Leaf"):
        Leaf().forward = ReLU()


def test_deepcopy_and_pickle_keep_the_tree() -> None:
    tree = Tree()
    for clone in (copy.deepcopy(tree), pickle.loads(pickle.dumps(tree))):
        assert clone.a.weight is not tree.a.weight
        assert list(clone.state_dict()) == list(tree.state_dict())
        np.testing.assert_array_equal(clone.b[0].weight.data, tree.b[0].weight.data)


def test_reassigning_a_plain_attribute_as_parameter_moves_it() -> None:
    m = Module()
    m.thing = 3
    m.thing = Parameter(np.zeros(2))
    assert "thing" not in m.__dict__ and "thing" in m._parameters


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "weight",
            np.zeros(3),
            r"cannot assign ndarray as parameter 'weight' \(Parameter or None expected\)",
        ),
        ("running", [1.0, 2.0], r"cannot assign list as buffer 'running' \(np.ndarray or None expected\)"),
    ],
)
def test_wrong_type_assignment_names_both(name: str, value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        setattr(Leaf(), name, value)


def test_wrong_type_for_child_module() -> None:
    tree = Tree()
    with pytest.raises(TypeError, match=r"cannot assign int as child module 'a' \(Module or None expected\)"):
        tree.a = 5


def test_assignment_before_init_fails() -> None:
    class Broken(Module):
        def __init__(self) -> None:
            self.w = Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"cannot assign 'w' before Module.__init__\(\) call"):
        Broken()


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ValueError, r"parameter name can't be empty, got ''"),
        ("a.b", ValueError, r"parameter name can't contain '\.', got 'a\.b'"),
        ("training", ValueError, r"parameter name 'training' clashes with an existing attribute of Leaf"),
        ("forward", ValueError, r"'forward' clashes"),
        ("running", ValueError, r"'running' clashes"),  # already a buffer
        (3, TypeError, r"parameter name must be a str, got int 3"),
    ],
)
def test_register_parameter_validates_names(name: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Leaf().register_parameter(name, Parameter(np.zeros(1)))


def test_register_validates_values() -> None:
    leaf = Leaf()
    with pytest.raises(TypeError, match=r"cannot register ndarray as parameter 'p'"):
        leaf.register_parameter("p", np.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"cannot register list as buffer 'b'"):
        leaf.register_buffer("b", [1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"cannot add str as child module 'm'"):
        leaf.add_module("m", "relu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"module name can't contain '\.', got 'x\.y'"):
        leaf.register_module("x.y", ReLU())
    with pytest.raises(ValueError, match=r"buffer name 'weight' clashes"):
        leaf.register_buffer("weight", np.zeros(1))


def test_getattr_and_delattr() -> None:
    tree = Tree()
    with pytest.raises(AttributeError, match=r"'Tree' object has no attribute 'nope'"):
        _ = tree.nope
    del tree.scale, tree.a
    assert "scale" not in tree._parameters and "a" not in tree._modules
    with pytest.raises(AttributeError, match="no attribute 'a'"):
        _ = tree.a
    leaf = tree.b[0]
    del leaf.scratch
    assert "scratch" not in leaf._buffers and "scratch" not in leaf._non_persistent_buffers
    leaf.note = 1
    del leaf.note
    assert not hasattr(leaf, "note")
    assert "running" in dir(leaf)


def test_get_submodule() -> None:
    tree = Tree()
    assert tree.get_submodule("b.0") is tree.b[0]
    assert tree.get_submodule("") is tree
    with pytest.raises(AttributeError, match=r"b has no submodule '7' \(looking up 'b\.7\.x'\)"):
        tree.get_submodule("b.7.x")


# --- walking ---------------------------------------------------------------------------------------------
def test_named_members_with_prefixes() -> None:
    tree = Tree()
    assert [name for name, _ in tree.named_parameters()] == ["scale", "a.weight", "b.0.weight"]
    assert [name for name, _ in tree.named_parameters(prefix="m", recurse=False)] == ["m.scale"]
    assert [name for name, _ in tree.named_buffers()] == [
        "a.running", "a.scratch", "a.count", "b.0.running", "b.0.scratch", "b.0.count"
    ]  # fmt: skip
    assert [name for name, _ in tree.named_modules()] == ["", "a", "b", "b.0", "b.1"]
    assert [name for name, _ in tree.named_children()] == ["a", "b"]
    assert len(list(tree.modules())) == 5 and len(list(tree.children())) == 2
    assert len(list(tree.parameters())) == 3 and len(list(tree.buffers(recurse=False))) == 0


def test_shared_objects_are_listed_once() -> None:
    shared_leaf = Leaf()
    seq = Sequential(shared_leaf, shared_leaf)
    assert [name for name, _ in seq.named_modules()] == ["", "0"]
    assert [name for name, _ in seq.named_modules(remove_duplicate=False)] == ["", "0", "1"]
    assert [name for name, _ in seq.named_parameters()] == ["0.weight"]
    assert len(list(seq.children())) == 1
    tied = Module()
    tied.p = Parameter(np.zeros(2))
    tied.q = tied.p
    assert [name for name, _ in tied.named_parameters()] == ["p"]
    assert [name for name, _ in tied.named_parameters(remove_duplicate=False)] == ["p", "q"]


# --- modes and casts -------------------------------------------------------------------------------------
def test_train_eval_recursive() -> None:
    tree = Tree()
    assert tree.eval() is tree
    assert not any(m.training for m in tree.modules())
    tree.train()
    assert all(m.training for m in tree.modules())
    with pytest.raises(TypeError, match="training mode must be a bool, got 'yes'"):
        tree.train("yes")  # type: ignore[arg-type]


def test_apply_visits_children_first() -> None:
    seen: list[str] = []
    Tree().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Leaf", "Leaf", "ReLU", "Sequential", "Tree"]


@pytest.mark.parametrize(
    ("cast", "dtype"), [("double", np.float64), ("half", np.float16), ("float", np.float32)]
)
def test_casts_convert_nested_parameters_and_buffers(cast: str, dtype: type) -> None:
    tree = Tree().double() if cast == "float" else Tree()
    holder = tree.b[0]._parameters["weight"]
    assert getattr(tree, cast)() is tree
    for name, p in tree.named_parameters():
        assert p.dtype == dtype, name
    for name, b in tree.named_buffers():
        assert b.dtype == (np.int64 if name.endswith("count") else dtype), name  # integer buffers kept
    assert tree.b[0]._parameters["weight"] is holder  # the same Parameter object, new data
    np.testing.assert_array_equal(tree.a.weight.data, [0, 1, 2])


def test_to_rejects_non_float_dtype() -> None:
    with pytest.raises(TypeError, match="floating dtype, got int32"):
        Tree().to(np.int32)


# --- calling and hooks -----------------------------------------------------------------------------------
def test_forward_hooks_replace_and_remove() -> None:
    leaf = Leaf()
    x = np.ones(3, np.float32)
    calls: list[str] = []

    def pre(module: Module, args: tuple) -> tuple:
        calls.append("pre")
        return (args[0] * 10,)

    def post(module: Module, args: tuple, output: np.ndarray) -> np.ndarray:
        calls.append("post")
        assert module is leaf and args[0][0] == 10  # sees the replaced input
        return output + 1

    def observe(module: Module, args: tuple, output: np.ndarray) -> None:
        calls.append("observe")

    h_pre = leaf.register_forward_pre_hook(pre)
    h_post = leaf.register_forward_hook(post)
    h_obs = leaf.register_forward_hook(observe)
    np.testing.assert_array_equal(leaf(x), [1, 11, 21])
    assert calls == ["pre", "post", "observe"]
    assert leaf.has_forward_hooks()
    h_pre.remove()
    h_post.remove()
    h_post.remove()  # idempotent
    np.testing.assert_array_equal(leaf(x), [0, 1, 2])
    h_obs.remove()
    assert not leaf.has_forward_hooks()


def test_pre_hook_may_return_a_single_value() -> None:
    leaf = Leaf()
    leaf.register_forward_pre_hook(lambda m, args: np.full(3, 2, np.float32))
    np.testing.assert_array_equal(leaf(np.ones(3, np.float32)), [0, 2, 4])


def test_has_forward_hooks_sees_descendants() -> None:
    tree = Tree()
    assert not tree.has_forward_hooks()
    handle = tree.b[1].register_forward_hook(lambda m, a, o: None)
    assert tree.has_forward_hooks()
    handle.remove()
    assert not tree.has_forward_hooks()


def test_module_without_forward() -> None:
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        Module()(1)


# --- state dict ------------------------------------------------------------------------------------------
def test_state_dict_keys_copies_and_non_persistent() -> None:
    tree = Tree()
    state = tree.state_dict()
    assert list(state) == [
        "scale",
        "a.weight",
        "a.running",
        "a.count",
        "b.0.weight",
        "b.0.running",
        "b.0.count",
    ]
    assert not any("scratch" in key for key in state)  # non-persistent buffers are left out
    state["a.weight"][0] = 99
    assert tree.a.weight.data[0] == 0  # a copy
    live = tree.state_dict(keep_vars=True)
    assert live["a.weight"] is tree.a._parameters["weight"] and live["a.running"] is tree.a.running
    assert next(iter(tree.state_dict(prefix="m."))) == "m.scale"


def test_load_state_dict_round_trip_and_cast() -> None:
    source, target = Tree(), Tree()
    source.a.weight.data[:] = [5, 6, 7]
    state = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in source.state_dict().items()}
    assert target.load_state_dict(state) == ([], [])
    assert target.a.weight.dtype == np.float32  # the model's dtype wins
    np.testing.assert_array_equal(target.a.weight.data, [5, 6, 7])
    state["a.weight"][0] = -1
    assert target.a.weight.data[0] == 5  # loaded values are private copies
    np.testing.assert_array_equal(target.b[0].scratch, [0, 0])  # non-persistent untouched


def test_strict_load_lists_every_problem_once() -> None:
    state = Tree().state_dict()
    del state["a.weight"], state["b.0.count"]
    state["a.extra"] = np.zeros(1)
    state["b.0.weight"] = np.zeros(5, np.float32)
    state["a.count"] = np.zeros(1, np.float32)
    with pytest.raises(WeightsFormatError) as info:
        Tree().load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Error(s) in loading state_dict for Tree:")
    assert "missing key(s): 'a.weight', 'b.0.count'" in message
    assert "unexpected key(s): 'a.extra'" in message
    assert "shape mismatch for 'b.0.weight': got (5,), the model has (2,)" in message
    assert "dtype mismatch for 'a.count': got float32, the model has int64" in message


def test_failed_load_changes_nothing() -> None:
    tree = Tree()
    before = tree.state_dict()
    state = {key: np.full_like(value, 9) for key, value in before.items()}
    state["b.0.weight"] = np.zeros(5, np.float32)  # one bad entry, listed after good ones
    with pytest.raises(WeightsFormatError, match=r"shape mismatch for 'b\.0\.weight'"):
        tree.load_state_dict(state)
    for key, value in tree.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_non_strict_load_returns_missing_and_unexpected() -> None:
    state = Tree().state_dict()
    del state["scale"]
    state["z"] = np.zeros(1)
    target = Tree()
    assert target.load_state_dict(state, strict=False) == (["scale"], ["z"])
    state["a.weight"] = np.zeros(4, np.float32)
    with pytest.raises(WeightsFormatError, match=r"shape mismatch for 'a.weight': got \(4,\)"):
        target.load_state_dict(state, strict=False)  # shape errors raise even when not strict
    with pytest.raises(TypeError, match="mapping of str to arrays, got list"):
        target.load_state_dict([("scale", 1)])  # type: ignore[arg-type]


def test_load_pre_hook_renames_foreign_keys() -> None:
    tree = Tree()
    foreign = {k.replace("a.", "first/"): v for k, v in Tree().state_dict().items()}
    foreign["first/weight"] = np.array([3, 2, 1], np.float32)
    seen_prefixes: list[str] = []

    def rename(module: Module, state: dict[str, Any], prefix: str) -> None:
        seen_prefixes.append(prefix)
        for key in [k for k in state if k.startswith("first/")]:
            state[prefix + "a." + key.removeprefix("first/")] = state.pop(key)

    tree.register_load_state_dict_pre_hook(rename)
    leaf_handle = tree.a.register_load_state_dict_pre_hook(lambda m, s, p: seen_prefixes.append(p))
    tree.load_state_dict(foreign)
    assert "first/weight" in foreign  # the caller's mapping is not modified
    np.testing.assert_array_equal(tree.a.weight.data, [3, 2, 1])
    assert seen_prefixes == ["", "a."]
    leaf_handle.remove()
    assert not tree.a._load_state_dict_pre_hooks


# --- printing --------------------------------------------------------------------------------------------
def test_repr_prints_the_nested_tree() -> None:
    model = Sequential(Linear(4, 3), Sequential(ReLU(), Linear(3, 2, bias=False)))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(4, 3)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Linear(3, 2, bias=False)\n"
        "  )\n"
        ")"
    )


def test_requires_grad_freezes_and_unfreezes_every_parameter():
    from audioembed.nn import Linear, Sequential

    model = Sequential(Linear(3, 4), Linear(4, 2))
    assert all(p.requires_grad for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    assert "requires_grad=False" in repr(next(model.parameters()))
    model[1].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    with pytest.raises(TypeError, match="requires_grad must be a bool, got 'yes'"):
        model.requires_grad_("yes")


def test_zero_grad_to_none_or_to_zeros_in_place():
    from audioembed.nn import Linear

    layer = Linear(3, 2)
    assert layer.weight.grad is None
    layer.weight.grad = np.ones_like(layer.weight.data)
    kept = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is kept and not kept.any()
    layer.bias.grad = np.ones_like(layer.bias.data)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_load_state_dict_copies_into_each_parameters_memory_order() -> None:
    """F-contiguous parameters (VGGish's output-major dense kernels) stay F through a state round trip."""
    layer = Linear(5, 3)
    layer.weight.data = np.asfortranarray(layer.weight.data)
    state = {k: np.ascontiguousarray(v) for k, v in layer.state_dict().items()}  # C arrays coming in
    layer.load_state_dict(state)
    assert layer.weight.data.flags.f_contiguous and not layer.weight.data.flags.c_contiguous
    np.testing.assert_array_equal(layer.weight.data, state["weight"])
    other = Linear(5, 3)  # C parameters stay C, whatever order the state has
    other.load_state_dict({k: np.asfortranarray(v) for k, v in state.items()})
    assert other.weight.data.flags.c_contiguous
