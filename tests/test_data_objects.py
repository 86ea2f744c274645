"""Tests for the built-in rendered-object dataset and its pure-torch renderer."""

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from jepa_blocks.actions import (
    euler_to_quaternion,
    quaternion_multiply,
    relative_rotation_from_euler,
)
from jepa_blocks.data.objects import (
    CLASS_NAMES,
    FIXED_NUISANCES,
    FORMAT_VERSION,
    LATENT_RANGES,
    OBJECTS_MEAN,
    OBJECTS_STD,
    ObjectSequences,
    RenderedObjects,
    compute_normalization,
    default_cache_dir,
    denormalize,
    make_object,
)
from jepa_blocks.data.objects.primitives import (
    Part,
    euler_to_matrix,
    hsv_to_rgb,
    light_direction,
    pack_parts,
    quaternion_to_matrix,
)
from jepa_blocks.data.objects.render import render, render_latents

EXTENT = 1.1
TINY = {"image_size": 16, "num_classes": 4, "instances_per_class": 3, "views_per_object": 6}


# ----------------------------------------------------------------------------- oracles


def _euler_matrix_oracle(euler: torch.Tensor) -> torch.Tensor:
    """R = Rz(c) Ry(b) Rx(a), built from the axis rotations (scipy's extrinsic "xyz")."""
    a, b, c = (float(v) for v in euler)
    rx = torch.tensor(
        [[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]],
        dtype=torch.float64,
    )
    ry = torch.tensor(
        [[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]],
        dtype=torch.float64,
    )
    rz = torch.tensor(
        [[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]],
        dtype=torch.float64,
    )
    return rz @ ry @ rx


def _march_oracle(parts: list[Part], rotation: torch.Tensor, size: int) -> torch.Tensor:
    """Per pixel, the index of the first part a ray marching from the camera enters (-1: none).

    An independent check of the closed-form ray test: point-in-solid tests in float64 along
    each pixel's ray, in steps of 0.004.
    """
    coords = EXTENT * ((torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1.0)
    v, u = torch.meshgrid(-coords, coords, indexing="ij")
    z = torch.arange(1.2, -1.2, -0.004, dtype=torch.float64)
    world = torch.stack(
        (u[..., None].expand(-1, -1, len(z)), v[..., None].expand(-1, -1, len(z)))
        + (z.expand(size, size, -1),),
        dim=-1,
    )  # (h, w, steps, 3)
    obj = world @ rotation.double()  # R^T p, as row vectors
    first = torch.full((size, size), len(z), dtype=torch.int64)
    who = torch.full((size, size), -1, dtype=torch.int64)
    for index, part in enumerate(parts):
        q = euler_to_matrix(torch.tensor(part.euler, dtype=torch.float64))
        local = (obj - torch.tensor(part.center, dtype=torch.float64)) @ q
        local = local / torch.tensor(part.half_size, dtype=torch.float64)
        if part.kind == "ellipsoid":
            inside = (local**2).sum(-1) <= 1
        elif part.kind == "box":
            inside = local.abs().amax(-1) <= 1
        else:
            radius = 1 - part.taper * (local[..., 2] + 1) / 2
            inside = (local[..., 2].abs() <= 1) & (local[..., :2].pow(2).sum(-1) <= radius**2)
        step = torch.where(inside.any(-1), inside.int().argmax(-1), len(z))
        nearer = step < first
        first = torch.where(nearer, step, first)
        who = torch.where(nearer, index, who)
    return who


_PURE = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _render_plain(prims, rotation: torch.Tensor, size: int) -> torch.Tensor:
    """Render on a black floor under a white light (so a pixel's hue names its part)."""
    b = rotation.shape[0]
    return render(
        prims,
        rotation,
        floor_rgb=torch.zeros(b, 3),
        light_dir=light_direction(torch.zeros(b), torch.zeros(b)),
        light_rgb=torch.ones(b, 3),
        image_size=size,
    )


# ----------------------------------------------------------------------------- conventions


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-math.pi, math.pi), min_size=3, max_size=3))
def test_euler_to_matrix_matches_axis_rotations(angles: list[float]) -> None:
    euler = torch.tensor(angles, dtype=torch.float64)
    expected = _euler_matrix_oracle(euler)
    torch.testing.assert_close(euler_to_matrix(euler), expected, atol=1e-12, rtol=0)
    # q and -q are one rotation.
    q = euler_to_quaternion(euler)
    torch.testing.assert_close(quaternion_to_matrix(-q), expected, atol=1e-12, rtol=0)


def test_hsv_to_rgb_matches_colorsys() -> None:
    import colorsys

    hsv = torch.rand(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = hsv_to_rgb(hsv[:, 0], hsv[:, 1], hsv[:, 2])
    expected = torch.tensor(
        [colorsys.hsv_to_rgb(*row.tolist()) for row in hsv], dtype=torch.float64
    )
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-math.pi / 2, math.pi / 2), min_size=3, max_size=3))
def test_marker_appears_where_the_rotation_puts_it(angles: list[float]) -> None:
    # A small sphere at p lands at pixel (R p)_xy with R = Rz Ry Rx: x to the right, y up.
    point = torch.tensor([0.6, 0.25, -0.3], dtype=torch.float64)
    prims = pack_parts([[Part("ellipsoid", tuple(point.tolist()), (0.08,) * 3, (1.0, 1.0, 1.0))]])
    euler = torch.tensor([angles])
    size = 64
    image = _render_plain(prims[torch.zeros(1, dtype=torch.long)], euler_to_matrix(euler), size)
    mask = image[0].amax(0) > 0.05
    rows, cols = mask.nonzero(as_tuple=True)
    x, y = (_euler_matrix_oracle(euler[0]) @ point)[:2]
    expected_col = (float(x) / EXTENT + 1) * size / 2 - 0.5
    expected_row = (1 - float(y) / EXTENT) * size / 2 - 0.5
    assert abs(cols.double().mean() - expected_col) < 0.35
    assert abs(rows.double().mean() - expected_row) < 0.35


@settings(max_examples=8, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["ellipsoid", "box", "frustum"]), min_size=3, max_size=3),
    data=st.data(),
)
def test_ray_test_matches_ray_marching(kinds: list[str], data: st.DataObject) -> None:
    coord = st.floats(-0.35, 0.35)
    angle = st.floats(-math.pi, math.pi)
    parts = []
    for kind, color in zip(kinds, _PURE, strict=True):
        parts.append(
            Part(
                kind,
                tuple(data.draw(st.tuples(coord, coord, coord))),
                tuple(data.draw(st.tuples(*[st.floats(0.12, 0.45)] * 3))),
                color,
                tuple(data.draw(st.tuples(angle, angle, angle))),
                data.draw(st.floats(0.0, 1.0)) if kind == "frustum" else 0.0,
            )
        )
    rotation = euler_to_matrix(torch.tensor([data.draw(st.tuples(angle, angle, angle))]))
    size = 16
    image = _render_plain(pack_parts([parts])[torch.zeros(1, dtype=torch.long)], rotation, size)
    got = torch.where(image[0].amax(0) > 0.05, image[0].argmax(0), -1)
    expected = _march_oracle(parts, rotation[0], size)
    # Only pixels whose ray grazes an edge may disagree with a 0.004-step march.
    assert int((got != expected).sum()) <= 4


# ----------------------------------------------------------------------------- the objects


def _rotated(name: str, rotations: torch.Tensor, size: int = 32) -> torch.Tensor:
    prims = pack_parts([make_object(name, seed=0)])
    index = torch.zeros(rotations.shape[0], dtype=torch.long)
    return _render_plain(prims[index], rotations, size)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_every_class_shows_its_orientation(name: str) -> None:
    # Half turns of the object about each of its axes (the likeliest symmetries), seen from a
    # generic viewpoint, must change the image clearly.
    half_turns = torch.tensor(
        [[0.0, 0.0, 0.0], [math.pi, 0.0, 0.0], [0.0, math.pi, 0.0], [0.0, 0.0, math.pi]]
    )
    view = euler_to_matrix(torch.tensor([0.5, 0.6, 0.3]))
    images = _rotated(name, view @ euler_to_matrix(half_turns))
    diffs = (images[1:] - images[:1]).abs().mean(dim=(1, 2, 3))
    assert bool((diffs > 0.02).all()), diffs
    # The object fills a sensible part of the frame and stays inside it.
    mask = images[0].amax(0) > 0.05
    assert 0.05 < mask.float().mean() < 0.8
    assert not bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_classes_differ_and_instances_vary() -> None:
    identity = torch.eye(3)[None]
    images = torch.cat([_rotated(name, identity) for name in CLASS_NAMES])
    diffs = (images[:, None] - images[None]).abs().mean(dim=(2, 3, 4))
    off_diagonal = diffs[~torch.eye(len(CLASS_NAMES), dtype=torch.bool)]
    assert float(off_diagonal.min()) > 0.02
    a, b = make_object("mug", seed=0, instance=0), make_object("mug", seed=0, instance=1)
    assert a != b
    assert make_object("mug", seed=0, instance=0) == a


def test_every_latent_changes_the_image() -> None:
    prims = pack_parts([make_object("chair", seed=0)])[torch.zeros(8, dtype=torch.long)]
    base = torch.tensor([0.3, -0.4, 0.2, 0.1, math.pi / 8, 1.0, 0.6])
    latents = base.repeat(8, 1)
    changes = [0.5, 0.5, 0.5, 0.3, math.pi / 8, 2.0, 0.4]
    for j, delta in enumerate(changes):
        latents[j + 1, j] += delta
    images = render_latents(prims, latents, image_size=32)
    diffs = (images[1:] - images[:1]).abs().mean(dim=(1, 2, 3))
    assert bool((diffs > 0.005).all()), diffs


def test_render_is_deterministic_and_in_range() -> None:
    prims = pack_parts([make_object(name, seed=3) for name in CLASS_NAMES[:4]])
    latents = torch.rand(4, 7, generator=torch.Generator().manual_seed(0))
    a = render_latents(prims[torch.arange(4)], latents, image_size=32)
    b = render_latents(prims[torch.arange(4)], latents, image_size=32)
    assert a.dtype == torch.float32 and a.shape == (4, 3, 32, 32)
    assert torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    smooth = render_latents(prims[torch.arange(4)], latents, image_size=32, supersample=2)
    assert smooth.shape == a.shape and (smooth - a).abs().mean() < 0.05


def test_render_errors() -> None:
    prims = pack_parts([make_object("mug", seed=0)])[torch.zeros(1, dtype=torch.long)]
    latents = torch.zeros(1, 7)
    for size in (8, 300):
        with pytest.raises(ValueError, match=r"image_size must be an int in \[16, 256\]"):
            render_latents(prims, latents, image_size=size)
    with pytest.raises(ValueError, match="prims holds 1 objects but 2 rotations"):
        render_latents(prims, torch.zeros(2, 7))
    with pytest.raises(ValueError, match="supersample must be an int >= 1"):
        render_latents(prims, latents, supersample=0)
    far = pack_parts([[Part("box", (2.5, 0, 0), (1, 1, 1), (1, 1, 1))]])
    with pytest.raises(ValueError, match="a primitive reaches 4.23 .* within radius 3"):
        render_latents(far[torch.zeros(1, dtype=torch.long)], latents)
    with pytest.raises(ValueError, match="unknown primitive kind 'torus'"):
        pack_parts([[Part("torus", (0, 0, 0), (1, 1, 1), (1, 1, 1))]])
    with pytest.raises(ValueError, match="taper must be in"):
        pack_parts([[Part("frustum", (0, 0, 0), (1, 1, 1), (1, 1, 1), taper=2.0)]])
    with pytest.raises(ValueError, match="unknown class 'spoon'"):
        make_object("spoon", seed=0)


# ----------------------------------------------------------------------------- the dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> RenderedObjects:
    return RenderedObjects(tmp_path_factory.mktemp("objects"), split="all", **TINY)


def test_rendered_objects_shapes_and_ranges(tiny: RenderedObjects) -> None:
    n = 4 * 3
    assert tiny.images.shape == (n, 6, 3, 16, 16) and tiny.images.dtype == torch.uint8
    assert tiny.latents.shape == (n, 6, 7) and tiny.latents.dtype == torch.float32
    assert tiny.labels.tolist() == [c for c in range(4) for _ in range(3)]
    assert tiny.labels.dtype == torch.int64 and len(tiny) == n * 6
    for j, (low, high) in enumerate(LATENT_RANGES):
        assert (
            float(tiny.latents[..., j].min()) >= low and float(tiny.latents[..., j].max()) <= high
        )
    item = tiny[7]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert int(item["object"]) == 1 and int(item["view"]) == 1 and int(item["label"]) == 0
    torch.testing.assert_close(denormalize(item["image"]), tiny.images[1, 1].float() / 255)
    torch.testing.assert_close(item["latents"], tiny.latents[1, 1])
    assert int(tiny[-1]["object"]) == n - 1
    with pytest.raises(IndexError):
        tiny[n * 6]


def test_splits_hold_disjoint_instances(tiny: RenderedObjects) -> None:
    root = tiny.cache_path.parent
    train = RenderedObjects(root, split="train", **TINY)
    val = RenderedObjects(root, split="val", **TINY)
    assert train.loaded_from_cache and val.loaded_from_cache
    assert train.num_objects == 4 * 2 and val.num_objects == 4
    assert set(train.instances.tolist()) == {0, 1} and set(val.instances.tolist()) == {2}
    torch.testing.assert_close(val.images, tiny.images[tiny.instances == 2])


def test_generation_is_deterministic() -> None:
    a = RenderedObjects(split="all", cache=False, seed=5, **TINY)
    b = RenderedObjects(split="all", cache=False, seed=5, **TINY)
    c = RenderedObjects(split="all", cache=False, seed=6, **TINY)
    assert torch.equal(a.images, b.images) and torch.equal(a.latents, b.latents)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.latents, c.latents)
    assert a.cache_path is None and not a.loaded_from_cache


def test_normalization_constants(tiny: RenderedObjects) -> None:
    mean, std = compute_normalization(tiny.images)
    assert max(abs(m - e) for m, e in zip(mean, OBJECTS_MEAN, strict=True)) < 0.08
    assert max(abs(s - e) for s, e in zip(std, OBJECTS_STD, strict=True)) < 0.05
    with pytest.raises(ValueError, match="images must be uint8"):
        compute_normalization(tiny.images.float())


def test_cache_round_trip_does_not_render_again(tmp_path, monkeypatch) -> None:
    first = RenderedObjects(tmp_path, **TINY)
    path = first.cache_path
    assert not first.loaded_from_cache and path.exists() and path.parent == tmp_path
    assert f"-v{FORMAT_VERSION}-" in path.name and first.cache_key in path.name
    mtime = os.stat(path).st_mtime_ns

    def fail(self):
        raise AssertionError("rendered although a valid cache exists")

    monkeypatch.setattr(RenderedObjects, "_render", fail)
    second = RenderedObjects(tmp_path, **TINY)
    assert second.loaded_from_cache and os.stat(path).st_mtime_ns == mtime
    assert torch.equal(first.images, second.images) and torch.equal(first.latents, second.latents)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_other_parameters_use_another_file(tmp_path) -> None:
    a = RenderedObjects(tmp_path, **TINY)
    b = RenderedObjects(tmp_path, **{**TINY, "image_size": 24})
    assert a.cache_path != b.cache_path and not b.loaded_from_cache
    assert b.images.shape[-1] == 24


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_rendered_again(tmp_path, damage: str) -> None:
    first = RenderedObjects(tmp_path, **TINY)
    path = first.cache_path
    data = path.read_bytes()
    path.write_bytes(b"not a torch file" if damage == "garbage" else data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="unreadable.*rendering the dataset again"):
        second = RenderedObjects(tmp_path, **TINY)
    assert not second.loaded_from_cache and torch.equal(first.images, second.images)
    third = RenderedObjects(tmp_path, **TINY)  # the rewritten file is good again
    assert third.loaded_from_cache


def test_nuisances_are_shared_per_object_or_fixed(tmp_path) -> None:
    per_view = RenderedObjects(tmp_path, split="all", **TINY)
    per_object = RenderedObjects(tmp_path, split="all", nuisances="object", **TINY)
    fixed = RenderedObjects(tmp_path, split="all", nuisances="fixed", **TINY)
    # The rotations are the same draws in every mode; only the scene latents change.
    for other in (per_object, fixed):
        assert torch.equal(other.latents[..., :3], per_view.latents[..., :3])
        assert other.cache_path != per_view.cache_path
    scene = per_view.latents[..., 3:]
    assert (scene != scene[:, :1]).any()  # per view: views of an object differ
    torch.testing.assert_close(per_object.latents[..., 3:], scene[:, :1].expand_as(scene))
    assert (per_object.latents[:, 0, 3:] != per_object.latents[:1, 0, 3:]).any()  # per object
    expected = torch.tensor(FIXED_NUISANCES).expand_as(scene)
    torch.testing.assert_close(fixed.latents[..., 3:], expected)
    # Views of one object under one scene still differ (rotation), and the scene shows.
    assert not torch.equal(fixed.images[:, 0], fixed.images[:, 1])
    assert not torch.equal(fixed.images, per_object.images)
    # The default keeps the cache name it always had (no new key in its parameters).
    assert "nuisances" not in per_view.params and per_view.nuisances == "view"


def test_mismatched_cache_is_rendered_again(tmp_path) -> None:
    first = RenderedObjects(tmp_path, **TINY)
    torch.save(
        {"key": first.cache_key, "params": first.params, "images": torch.zeros(1)}, first.cache_path
    )
    second = RenderedObjects(tmp_path, **TINY)
    assert not second.loaded_from_cache and torch.equal(first.images, second.images)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JEPA_BLOCKS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "objects"
    objects = RenderedObjects(**TINY)
    assert objects.cache_path.parent == tmp_path / "objects" and objects.cache_path.exists()
    monkeypatch.delenv("JEPA_BLOCKS_CACHE")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "jepa_blocks" / "objects"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "split must be 'train', 'val' or 'all'"),
        ({"size": "huge"}, "size must be one of"),
        ({"image_size": 8}, r"image_size must be an int in \[16, 256\], got 8"),
        ({"image_size": 512}, r"image_size must be an int in \[16, 256\], got 512"),
        ({"num_classes": 0}, r"num_classes must be in \[1, 12\]"),
        ({"num_classes": 13}, r"num_classes must be in \[1, 12\]"),
        ({"instances_per_class": 1}, "instances_per_class must be an int >= 2"),
        ({"views_per_object": 0}, "views_per_object must be an int >= 1"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\)"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"supersample": 0}, "supersample must be an int >= 1"),
        ({"nuisances": "camera"}, r"nuisances must be one of \('view', 'object', 'fixed'\)"),
    ],
)
def test_rendered_objects_errors(tmp_path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RenderedObjects(tmp_path, **{**TINY, **kwargs})
    assert list(tmp_path.iterdir()) == []  # rejected before anything was written


# ----------------------------------------------------------------------------- sequences


@settings(max_examples=20, deadline=None)
@given(
    index=st.integers(0, 11),
    epoch=st.integers(0, 30),
    num_views=st.integers(2, 6),
    canonical=st.booleans(),
)
def test_sequences_draw_distinct_views_and_matching_actions(
    tiny: RenderedObjects, index: int, epoch: int, num_views: int, canonical: bool
) -> None:
    seqs = ObjectSequences(tiny, num_views=num_views, canonical=canonical, seed=3)
    seqs.set_epoch(epoch)
    item = seqs[index]
    m = num_views - 1
    assert item["views"].shape == (num_views, 3, 16, 16) and item["views"].dtype == torch.float32
    assert item["actions"].shape == (m, 4) and item["actions"].dtype == torch.float32
    assert item["latents"].shape == (num_views, 7)
    assert item["label"].dtype == torch.int64 and item["label"].dim() == 0
    assert int(item["label"]) == int(tiny.labels[index]) and int(item["index"]) == index
    ids = item["view_ids"]
    assert len(set(ids.tolist())) == num_views  # distinct views
    torch.testing.assert_close(item["latents"], tiny.latents[index, ids])
    torch.testing.assert_close(denormalize(item["views"]), tiny.images[index, ids].float() / 255)
    euler = item["latents"][:, :3].double()
    expected = relative_rotation_from_euler(euler, canonical=canonical).float()
    torch.testing.assert_close(item["actions"], expected, atol=1e-6, rtol=0)
    if canonical:
        assert bool((item["actions"][:, 3] >= 0).all())
    # Applying a_1 .. a_m to q_1 gives q_{m+1} (up to the sign of the quaternion).
    q = euler_to_quaternion(euler[0])
    for action in item["actions"].double():
        q = quaternion_multiply(q, action)
    target = euler_to_quaternion(euler[-1])
    assert abs(abs(float((q * target).sum())) - 1.0) < 1e-5


def test_rotcolor_actions(tiny: RenderedObjects) -> None:
    rot = ObjectSequences(tiny, num_views=5, action="rot", seed=1)
    rotcolor = ObjectSequences(tiny, num_views=5, action="rotcolor", seed=1)
    assert rot.dim_action == 4 and rotcolor.dim_action == 6 and rotcolor.num_classes == 4
    a, b = rot[2], rotcolor[2]
    assert b["actions"].shape == (4, 6)
    torch.testing.assert_close(b["actions"][:, :4], a["actions"])
    hues = b["latents"][:, [3, 6]]
    torch.testing.assert_close(b["actions"][:, 4:], hues[1:] - hues[:-1])


def test_sequences_are_reproducible_per_epoch(tiny: RenderedObjects) -> None:
    a = ObjectSequences(tiny, num_views=3, seed=0)
    b = ObjectSequences(tiny, num_views=3, seed=0)
    draws = torch.stack([a.draw_views(i) for i in range(len(a))])
    assert torch.equal(draws, torch.stack([b.draw_views(i) for i in range(len(b))]))
    a.set_epoch(1)
    assert not torch.equal(draws, torch.stack([a.draw_views(i) for i in range(len(a))]))
    a.set_epoch(0)
    assert torch.equal(draws, torch.stack([a.draw_views(i) for i in range(len(a))]))
    c = ObjectSequences(tiny, num_views=3, seed=1)
    assert not torch.equal(draws, torch.stack([c.draw_views(i) for i in range(len(c))]))
    raw = ObjectSequences(tiny, num_views=3, normalize=False)[0]["views"]
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1


def test_dataloader_workers_match_main_process(tiny: RenderedObjects) -> None:
    seqs = ObjectSequences(tiny, num_views=4, action="rotcolor", seed=7)
    seqs.set_epoch(2)
    main = list(DataLoader(seqs, batch_size=4, num_workers=0))
    workers = list(DataLoader(seqs, batch_size=4, num_workers=2))
    assert len(main) == len(workers) == 3
    for x, y in zip(main, workers, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


def test_sequence_errors(tiny: RenderedObjects) -> None:
    with pytest.raises(
        ValueError, match=r"num_views \(m \+ 1\) must be in \[2, views_per_object=6\], got 7"
    ):
        ObjectSequences(tiny, num_views=7)
    with pytest.raises(ValueError, match="got 1"):
        ObjectSequences(tiny, num_views=1)
    with pytest.raises(ValueError, match="action must be 'rot'.*or 'rotcolor'.*got 'color'"):
        ObjectSequences(tiny, num_views=3, action="color")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        ObjectSequences(tiny, num_views=3, seed=-2)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        ObjectSequences(tiny, num_views=3).set_epoch(-1)
    with pytest.raises(IndexError):
        ObjectSequences(tiny, num_views=3)[12]


def test_cache_key_and_pixels_are_stable_across_releases() -> None:
    # Golden values from the code that wrote users' caches: a changed key re-renders for
    # minutes on every machine, changed pixels under an old key would serve other data.
    objects = RenderedObjects(size="small", image_size=16, num_classes=2, split="all", cache=False)
    assert objects.cache_key == "bd18c54538ddcb99"
    assert int(objects.images.long().sum()) == 8476471
    assert float(objects.latents.double().sum()) == pytest.approx(570.9879774921574, abs=1e-9)
