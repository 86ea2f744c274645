"""Tests for jepa_blocks.data.sources: each loader reads tiny files written here in its format."""

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from jepa_blocks.actions import relative_rotation_from_euler, threediebench_actions
from jepa_blocks.data.sources import (
    CIFAR100,
    STL10,
    THREEDIEBENCH_MEAN,
    THREEDIEBENCH_STD,
    ImageFolder,
    ThreeDIEBench,
    ThreeDIEBenchSequences,
)

# ------------------------------------------------------------------------ 3DIEBench fixture

SYNSETS = ("02958343", "02691156")  # written unsorted on purpose
OBJECTS_PER_SYNSET = 3
VIEWS = 6
SIDE = 8


def view_colour(obj: int, view: int) -> tuple[int, int, int]:
    """A solid colour that identifies (object, view) after JPEG round-trip."""
    return (30 + 35 * view, 220 - 30 * view, 40 + 25 * obj)


def make_3diebench(root: Path, *, split_dtype: str = "U") -> dict:
    """Two synsets x three objects x six views of 8x8 JPEGs, SIE layout; returns the truth."""
    rng = np.random.default_rng(0)
    paths, labels, latents = [], [], {}
    obj = 0
    for label, synset in enumerate(SYNSETS):
        for j in range(OBJECTS_PER_SYNSET):
            object_id = f"{obj:02d}{'ab' * 15}{j}"
            folder = root / synset / object_id
            folder.mkdir(parents=True)
            for k in range(VIEWS):
                pixels = np.empty((SIDE, SIDE, 3), np.uint8)
                pixels[:] = view_colour(obj, k)
                Image.fromarray(pixels).save(folder / f"image_{k}.jpg", quality=95)
                latent = np.concatenate(
                    [
                        rng.uniform(-np.pi / 2, np.pi / 2, 3),
                        [rng.uniform(0, 1), rng.uniform(0, np.pi / 4)],
                        [rng.uniform(0, 2 * np.pi), rng.uniform(0, 1)],
                    ]
                )
                np.save(folder / f"latent_{k}.npy", latent)
                latents[(obj, k)] = latent
            paths.append(f"/{synset}/{object_id}")
            labels.append(label)
            obj += 1
    # train: first two objects of each synset; val: the last one.
    train = [0, 1, 3, 4]
    val = [2, 5]
    for name, members in (("train", train), ("val", val)):
        array = np.array([paths[i] for i in members])
        if split_dtype == "S":
            array = array.astype(bytes)
        elif split_dtype == "O":
            array = array.astype(object)
        np.save(root / f"{name}_images.npy", array)
        np.save(root / f"{name}_labels.npy", np.array([labels[i] for i in members]))
    return {"train": train, "val": val, "labels": labels, "latents": latents}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("3diebench")
    return root, make_3diebench(root)


def identify_view(image: torch.Tensor, obj: int) -> int:
    """Which view of object ``obj`` a normalised image shows (nearest solid colour)."""
    mean = torch.tensor(THREEDIEBENCH_MEAN).view(3, 1, 1)
    std = torch.tensor(THREEDIEBENCH_STD).view(3, 1, 1)
    rgb = (image * std + mean).mean(dim=(1, 2)) * 255
    distances = [
        float((rgb - torch.tensor(view_colour(obj, k), dtype=torch.float32)).abs().max())
        for k in range(VIEWS)
    ]
    best = int(np.argmin(distances))
    assert distances[best] < 4.0, distances
    return best


# ------------------------------------------------------------------------ 3DIEBench views


def test_threediebench_views_values_labels(bench: tuple[Path, dict]) -> None:
    root, truth = bench
    ds = ThreeDIEBench(root, split="train", image_size=None, views_per_object=VIEWS)
    assert len(ds) == 4 * VIEWS and ds.num_objects == 4 and ds.num_classes == 2
    mean = torch.tensor(THREEDIEBENCH_MEAN).view(3, 1, 1)
    std = torch.tensor(THREEDIEBENCH_STD).view(3, 1, 1)
    for index in (0, 7, 13, len(ds) - 1):
        image, label = ds[index]
        local, view = divmod(index, VIEWS)
        obj = truth["train"][local]
        assert image.shape == (3, SIDE, SIDE) and image.dtype == torch.float32
        assert label == truth["labels"][obj]
        expected = torch.tensor(view_colour(obj, view), dtype=torch.float32).view(3, 1, 1) / 255
        torch.testing.assert_close(
            image * std + mean, expected.expand(3, SIDE, SIDE), atol=3 / 255, rtol=0
        )
        latent = ds.load_latent(local, view)
        np.testing.assert_array_equal(latent.numpy(), truth["latents"][(obj, view)])
    assert ds[-1][1] == ds[len(ds) - 1][1]
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_threediebench_resize_and_unnormalised(bench: tuple[Path, dict]) -> None:
    root, truth = bench
    square = ThreeDIEBench(root, split="val", image_size=4, views_per_object=VIEWS)
    assert square[0][0].shape == (3, 4, 4)
    plain = ThreeDIEBench(
        root, split="val", image_size=(4, 6), normalize=False, views_per_object=VIEWS
    )
    image, label = plain[VIEWS + 2]  # second val object, view 2
    obj = truth["val"][1]
    assert image.shape == (3, 4, 6) and label == truth["labels"][obj]
    expected = torch.tensor(view_colour(obj, 2), dtype=torch.float32).view(3, 1, 1) / 255
    torch.testing.assert_close(image, expected.expand(3, 4, 6), atol=3 / 255, rtol=0)


@pytest.mark.parametrize("split_dtype", ["S", "O"])
def test_threediebench_split_file_dtypes(tmp_path: Path, split_dtype: str) -> None:
    make_3diebench(tmp_path, split_dtype=split_dtype)
    ds = ThreeDIEBench(tmp_path, split="val", views_per_object=VIEWS, image_size=None)
    assert ds.objects[0].startswith(SYNSETS[0] + "/") and ds[0][0].shape == (3, SIDE, SIDE)


# --------------------------------------------------------------------- 3DIEBench sequences


@pytest.mark.parametrize("action", ["rot", "rotcolor"])
def test_sequences_layout_and_actions(bench: tuple[Path, dict], action: str) -> None:
    root, truth = bench
    ds = ThreeDIEBenchSequences(
        root, split="train", num_views=4, action=action, views_per_object=VIEWS, image_size=None
    )
    assert len(ds) == 4 and ds.num_classes == 2
    assert ds.dim_action == (4 if action == "rot" else 6)
    for index in range(len(ds)):
        item = ds[index]
        obj = truth["train"][index]
        assert item["views"].shape == (4, 3, SIDE, SIDE)
        assert item["actions"].shape == (3, ds.dim_action)
        assert item["actions"].dtype == torch.float32
        assert item["latents"].shape == (4, 7) and item["latents"].dtype == torch.float32
        assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
        assert int(item["label"]) == truth["labels"][obj]
        # Each image and its latent come from the same, distinct, view.
        shown = [identify_view(view, obj) for view in item["views"]]
        assert shown == ds.draw_views(index).tolist() == item["view_ids"].tolist()
        assert item["view_ids"].dtype == torch.int64 and int(item["index"]) == index
        assert len(set(shown)) == 4
        stored = np.stack([truth["latents"][(obj, k)] for k in shown])
        np.testing.assert_allclose(item["latents"].numpy(), stored.astype(np.float32))
        expected = relative_rotation_from_euler(item["latents"][:, :3])
        torch.testing.assert_close(item["actions"][:, :4], expected, atol=1e-6, rtol=0)
        if action == "rotcolor":
            colour = torch.from_numpy(stored[:, [3, 6]]).float()
            torch.testing.assert_close(
                item["actions"][:, 4:], colour[1:] - colour[:-1], atol=1e-6, rtol=0
            )


def test_threediebench_actions_function() -> None:
    latents = torch.tensor(
        [[0.1, -0.2, 0.3, 0.9, 0.1, 1.0, 0.2], [-0.5, 0.4, 1.2, 0.1, 0.2, 2.0, 0.7]],
        dtype=torch.float64,
    )
    rot = threediebench_actions(latents, action="rot")
    torch.testing.assert_close(rot, relative_rotation_from_euler(latents[:, :3]))
    both = threediebench_actions(latents, action="rotcolor")
    # No hue wrap-around: 0.1 - 0.9 stays -0.8.
    torch.testing.assert_close(both[0, 4:], torch.tensor([-0.8, 0.5], dtype=torch.float64))
    canonical = threediebench_actions(-latents, action="rot", canonical=True)
    assert bool((canonical[:, 3] >= 0).all())
    raw = threediebench_actions(-latents, action="rot")
    torch.testing.assert_close(canonical, raw * torch.sign(raw[:, 3:4]))
    with pytest.raises(ValueError, match="action must be 'rot' or 'rotcolor'"):
        threediebench_actions(latents, action="color")  # type: ignore[arg-type]


def test_sequences_canonical(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    kw = {"split": "train", "num_views": 6, "views_per_object": VIEWS, "image_size": 2}
    raw = ThreeDIEBenchSequences(root, **kw)[0]["actions"]
    canonical = ThreeDIEBenchSequences(root, canonical=True, **kw)[0]["actions"]
    assert bool((canonical[:, 3] >= 0).all())
    torch.testing.assert_close(canonical, raw * torch.sign(raw[:, 3:4]))


def test_sequences_determinism_and_epochs(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    kw = {"split": "train", "num_views": 3, "views_per_object": VIEWS, "image_size": 2}
    a, b = ThreeDIEBenchSequences(root, **kw), ThreeDIEBenchSequences(root, **kw)
    for index in range(len(a)):
        for key in ("views", "actions", "latents", "label"):
            torch.testing.assert_close(a[index][key], b[index][key], rtol=0, atol=0)
    # Global RNG state does not matter.
    torch.manual_seed(123)
    np.random.seed(7)
    assert torch.equal(a[1]["views"], b[1]["views"])
    draws = [a.draw_views(i).tolist() for i in range(200)]
    a.set_epoch(1)
    assert a.epoch == 1
    epoch1 = [a.draw_views(i).tolist() for i in range(200)]
    assert sum(x != y for x, y in zip(draws, epoch1, strict=True)) > 150
    a.set_epoch(0)
    assert [a.draw_views(i).tolist() for i in range(200)] == draws
    other = ThreeDIEBenchSequences(root, seed=1, **kw)
    assert (
        sum(
            x != y
            for x, y in zip(draws, [other.draw_views(i).tolist() for i in range(200)], strict=True)
        )
        > 150
    )


def test_sequences_draws_are_uniform(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    ds = ThreeDIEBenchSequences(root, num_views=3, views_per_object=VIEWS, image_size=2)
    draws = torch.stack([ds.draw_views(i) for i in range(3000)])
    # Every view is equally likely at every position: expected 500 per cell, sd ~ 20.
    for position in range(3):
        counts = torch.bincount(draws[:, position], minlength=VIEWS)
        assert int(counts.min()) > 400 and int(counts.max()) < 600, counts
    # Every ordered triple of distinct views occurs (6 * 5 * 4 = 120, ~25 each).
    assert len({tuple(d) for d in draws.tolist()}) == 120


@settings(max_examples=20, deadline=None)
@given(
    num_views=st.integers(2, VIEWS),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 1000),
    index=st.integers(0, 3),
)
def test_sequences_draws_property(
    bench: tuple[Path, dict], num_views: int, seed: int, epoch: int, index: int
) -> None:
    root, _ = bench
    ds = ThreeDIEBenchSequences(
        root, num_views=num_views, views_per_object=VIEWS, seed=seed, image_size=2
    )
    ds.set_epoch(epoch)
    drawn = ds.draw_views(index)
    assert drawn.shape == (num_views,) and len(set(drawn.tolist())) == num_views
    assert int(drawn.min()) >= 0 and int(drawn.max()) < VIEWS
    assert torch.equal(drawn, ds.draw_views(index))


def test_sequences_dataloader_workers_match(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    ds = ThreeDIEBenchSequences(
        root, num_views=3, action="rotcolor", views_per_object=VIEWS, image_size=4, seed=3
    )
    ds.set_epoch(2)
    serial = list(DataLoader(ds, batch_size=2, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(serial) == len(parallel) == 2
    for x, y in zip(serial, parallel, strict=True):
        assert x["views"].shape == (2, 3, 3, 4, 4) and x["actions"].shape == (2, 2, 6)
        for key in x:
            assert torch.equal(x[key], y[key])


# -------------------------------------------------------------------- 3DIEBench error paths


def test_threediebench_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"3DIEBench root .*nowhere does not exist"):
        ThreeDIEBench(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["train_images.npy", "train_labels.npy"])
def test_threediebench_missing_split_file(tmp_path: Path, missing: str) -> None:
    make_3diebench(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(
        FileNotFoundError, match=rf"3DIEBench root .* has no {missing}; expected the SIE layout"
    ):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)


def test_threediebench_corrupt_split_files(tmp_path: Path) -> None:
    make_3diebench(tmp_path)
    (tmp_path / "val_images.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"val_images.npy is not a valid .npy file"):
        ThreeDIEBench(tmp_path, split="val", views_per_object=VIEWS)
    labels_file = tmp_path / "train_labels.npy"
    labels_file.write_bytes(labels_file.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"train_labels.npy is not a valid .npy file"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)


def test_threediebench_inconsistent_split_files(tmp_path: Path) -> None:
    make_3diebench(tmp_path)
    np.save(tmp_path / "train_labels.npy", np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="lists 4 objects .* has 3 labels"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)
    np.save(tmp_path / "train_labels.npy", np.array([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="must hold a 1-d integer array"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)
    np.save(tmp_path / "train_labels.npy", np.array([0, -1, 1, 0]))
    with pytest.raises(ValueError, match="negative labels"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)
    np.save(tmp_path / "train_labels.npy", np.array([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="num_classes=1 but .* has label 1"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS, num_classes=1)
    np.save(tmp_path / "train_images.npy", np.zeros(4))
    with pytest.raises(ValueError, match="1-d array of object paths"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)


def test_threediebench_missing_object_files(tmp_path: Path) -> None:
    make_3diebench(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no image_6.jpg \(views_per_object=7\)"):
        ThreeDIEBench(tmp_path, views_per_object=7)
    first = ThreeDIEBench(tmp_path, views_per_object=VIEWS).object_dir(0)
    np.save(first / "latent_0.npy", np.zeros(9))
    with pytest.raises(ValueError, match=r"latent_0.npy must hold 7 floats"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)
    for file in first.iterdir():
        file.unlink()
    first.rmdir()
    with pytest.raises(FileNotFoundError, match=r"object folder .* does not exist"):
        ThreeDIEBench(tmp_path, views_per_object=VIEWS)


def test_threediebench_corrupt_files_at_read(tmp_path: Path) -> None:
    make_3diebench(tmp_path)
    ds = ThreeDIEBenchSequences(tmp_path, num_views=VIEWS, views_per_object=VIEWS)
    folder = ds.view_dataset.object_dir(1)
    (folder / "image_3.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ValueError, match=r"image_3.jpg could not be decoded"):
        ds[1]
    (folder / "image_3.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image_3.jpg does not exist"):
        ds[1]
    (ds.view_dataset.object_dir(2) / "latent_4.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"latent_4.npy is not a valid .npy file"):
        ds[2]


def test_threediebench_bad_arguments(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        ThreeDIEBench(root, split="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="views_per_object must be >= 1"):
        ThreeDIEBench(root, views_per_object=0)
    with pytest.raises(ValueError, match="image_size must be positive"):
        ThreeDIEBench(root, image_size=0, views_per_object=VIEWS)
    with pytest.raises(ValueError, match="image_size must be an int or a"):
        ThreeDIEBench(root, image_size=(1, 2, 3), views_per_object=VIEWS)
    with pytest.raises(ValueError, match=r"num_views \(m \+ 1\) must be in \[2, "):
        ThreeDIEBenchSequences(root, num_views=1, views_per_object=VIEWS)
    with pytest.raises(ValueError, match=r"views_per_object=6\], got 7"):
        ThreeDIEBenchSequences(root, num_views=7, views_per_object=VIEWS)
    with pytest.raises(ValueError, match="action must be 'rot'"):
        ThreeDIEBenchSequences(root, num_views=3, action="all", views_per_object=VIEWS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        ThreeDIEBenchSequences(root, num_views=3, views_per_object=VIEWS, seed=-1)
    ds = ThreeDIEBenchSequences(root, num_views=3, views_per_object=VIEWS)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        ds.set_epoch(-1)
    assert ds.epoch == 0


# ------------------------------------------------------------------------------- CIFAR-100


def write_cifar(root: Path, *, n_train: int = 5, n_test: int = 3, str_keys: bool = False) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 100, n).tolist()
        content = {b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * n}
        if str_keys:
            content = {k.decode(): v for k, v in content.items()}
        (folder / split).write_bytes(pickle.dumps(content, protocol=2))
        truth[split] = (data, labels)
    names = [f"class{i}".encode() for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}, protocol=2))
    return truth


@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar100_round_trip(tmp_path: Path, str_keys: bool) -> None:
    truth = write_cifar(tmp_path, str_keys=str_keys)
    for split in ("train", "test"):
        ds = CIFAR100(tmp_path, split=split)
        data, labels = truth[split]
        assert len(ds) == len(labels) and ds.num_classes == 100
        assert ds.classes[7] == "class7"
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (3, 32, 32) and image.dtype == torch.float32
            assert label == labels[i]
            # Oracle from the format's definition: channel plane, then row-major pixels.
            c, r, col = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
            expected = data[i][c * 1024 + r * 32 + col].astype(np.float32) / 255
            np.testing.assert_array_equal(image.numpy(), expected)


def test_cifar100_root_is_the_python_folder(tmp_path: Path) -> None:
    truth = write_cifar(tmp_path)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    ds = CIFAR100(tmp_path / "cifar-100-python", split="test")
    assert [ds[i][1] for i in range(len(ds))] == truth["test"][1]
    assert ds.classes[3] == "3"


def test_cifar100_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100 root .*absent does not exist"):
        CIFAR100(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="has neither cifar-100-python/train nor train"):
        CIFAR100(tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        CIFAR100(tmp_path, split="val")  # type: ignore[arg-type]
    write_cifar(tmp_path)
    folder = tmp_path / "cifar-100-python"
    good = (folder / "train").read_bytes()
    (folder / "train").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"split file .*train is not a readable pickle"):
        CIFAR100(tmp_path)
    (folder / "train").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"train is not a readable pickle .*corrupt"):
        CIFAR100(tmp_path)

    def put(content: object) -> None:
        (folder / "train").write_bytes(pickle.dumps(content, protocol=2))

    put([1, 2, 3])
    with pytest.raises(ValueError, match="holds a list, not a dict"):
        CIFAR100(tmp_path)
    put({b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match="missing 'data' or 'fine_labels'"):
        CIFAR100(tmp_path)
    put({b"data": np.zeros((2, 3071), np.uint8), b"fine_labels": [0, 1]})
    with pytest.raises(ValueError, match=r"non-empty \(N, 3072\) uint8 array, got .*3071"):
        CIFAR100(tmp_path)
    put({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0]})
    with pytest.raises(ValueError, match="must hold 2 ints"):
        CIFAR100(tmp_path)
    put({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]})
    with pytest.raises(ValueError, match=r"must lie in 0..99, got 0..100"):
        CIFAR100(tmp_path)
    put({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]})
    (folder / "meta").write_bytes(b"\x80\x02junk")
    with pytest.raises(ValueError, match=r"meta file .*meta is not a readable pickle"):
        CIFAR100(tmp_path)


# ---------------------------------------------------------------------------------- STL-10


def stl_bytes(images: np.ndarray) -> bytes:
    """STL-10's definition: per image and channel, pixel (row, col) at byte col * 96 + row."""
    n = len(images)
    buffer = np.zeros(n * 3 * 96 * 96, np.uint8)
    i, c, r, col = np.meshgrid(
        np.arange(n), np.arange(3), np.arange(96), np.arange(96), indexing="ij"
    )
    buffer[i * 27648 + c * 9216 + col * 96 + r] = images[i, c, r, col]
    return buffer.tobytes()


def write_stl(folder: Path, split: str, images: np.ndarray, labels: list[int] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_X.bin").write_bytes(stl_bytes(images))
    if labels is not None:
        (folder / f"{split}_y.bin").write_bytes(bytes(labels))


def test_stl10_orientation_and_labels(tmp_path: Path) -> None:
    images = np.zeros((3, 3, 96, 96), np.uint8)
    images[0, :, 0, :] = 255  # image 0: top row white
    images[1, 0, :, 0] = 255  # image 1: left column red
    images[2] = np.arange(96, dtype=np.uint8)[None, :, None]  # brightness grows downwards
    folder = tmp_path / "stl10_binary"
    write_stl(folder, "train", images, [1, 10, 4])
    ds = STL10(tmp_path, split="train")
    assert len(ds) == 3 and ds.num_classes == 10
    assert [ds[i][1] for i in range(3)] == [0, 9, 3]
    top, _ = ds[0]
    assert top.shape == (3, 96, 96) and top.dtype == torch.float32
    assert bool((top[:, 0, :] == 1).all()) and float(top[:, 1:, :].abs().max()) == 0.0
    left, _ = ds[1]
    assert bool((left[0, :, 0] == 1).all()) and float(left[0, :, 1:].abs().max()) == 0.0
    assert float(left[1:].abs().max()) == 0.0
    ramp, _ = ds[2]
    rows = torch.arange(96, dtype=torch.float32).view(1, 96, 1) / 255
    torch.testing.assert_close(ramp, rows.expand(3, 96, 96), rtol=0, atol=0)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_stl10_round_trip_property(n: int, seed: int) -> None:
    images = np.random.default_rng(seed).integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "stl10_binary"
        write_stl(folder, "unlabeled", images, None)
        ds = STL10(folder, split="unlabeled")  # root pointing at stl10_binary itself
        assert len(ds) == n
        for i in range(n):
            image, label = ds[i]
            assert label == -1
            np.testing.assert_array_equal(image.numpy(), images[i].astype(np.float32) / 255)


def test_stl10_is_memory_mapped_and_pickles_small(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    write_stl(tmp_path / "stl10_binary", "test", images, [2, 2, 5])
    ds = STL10(tmp_path, split="test")
    ds[0]
    assert isinstance(ds._images, np.memmap)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._images is None and len(pickle.dumps(ds)) < 5000
    np.testing.assert_array_equal(clone[2][0].numpy(), ds[2][0].numpy())
    serial = list(DataLoader(ds, batch_size=2, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=2, num_workers=2))
    for (xa, ya), (xb, yb) in zip(serial, parallel, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert serial[0][1].tolist() == [1, 1]


def test_stl10_errors(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    with pytest.raises(FileNotFoundError, match=r"STL-10 root .*stl10_binary does not exist"):
        STL10(folder)
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="neither stl10_binary/test_X.bin nor test_X.bin"):
        STL10(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'unlabeled'"):
        STL10(tmp_path, split="val")  # type: ignore[arg-type]
    images = np.zeros((2, 3, 96, 96), np.uint8)
    write_stl(folder, "train", images, [1, 2])
    x_file = folder / "train_X.bin"
    x_file.write_bytes(x_file.read_bytes() + b"\x00")
    with pytest.raises(
        ValueError,
        match=r"train_X.bin has 55297 bytes, not a positive multiple of the 27648-byte record",
    ):
        STL10(tmp_path)
    x_file.write_bytes(b"")
    with pytest.raises(ValueError, match=r"train_X.bin has 0 bytes"):
        STL10(tmp_path)
    write_stl(folder, "train", images, [1, 2, 3])
    with pytest.raises(ValueError, match=r"train_y.bin has 3 bytes \(labels\) but .* 2 images"):
        STL10(tmp_path)
    write_stl(folder, "train", images, [0, 2])
    with pytest.raises(ValueError, match=r"must hold labels 1..10, got 0..2"):
        STL10(tmp_path)
    (folder / "train_y.bin").unlink()
    with pytest.raises(FileNotFoundError, match="has no train_y.bin for train_X.bin"):
        STL10(tmp_path)


# ---------------------------------------------------------------------------- image folder


def test_image_folder_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    written = {}
    for cls, names in (("zebra", ["b.png", "a.PNG"]), ("ant", ["c.png", "deep/d.png"])):
        for name in names:
            path = tmp_path / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, format="PNG")
            written[path] = pixels
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "ant" / "e.png")
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"skip me")
    (tmp_path / ".cache").mkdir()

    ds = ImageFolder(tmp_path)
    assert ds.classes == ["ant", "zebra"] and ds.num_classes == 2
    names = [p.relative_to(tmp_path).as_posix() for p, _ in ds.samples]
    assert names == ["ant/c.png", "ant/e.png", "ant/deep/d.png", "zebra/a.PNG", "zebra/b.png"]
    assert ds.targets == [0, 0, 0, 1, 1]
    for i, (path, label) in enumerate(ds.samples):
        image, got = ds[i]
        assert got == label and image.shape == (3, 5, 7) and image.dtype == torch.float32
        expected = written.get(path)
        if expected is None:  # the grayscale file: three equal channels
            expected = np.repeat(gray[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(image.numpy(), expected.transpose(2, 0, 1) / np.float32(255))
    assert ImageFolder(tmp_path, image_size=4)[0][0].shape == (3, 4, 4)
    assert ImageFolder(tmp_path, image_size=(3, 6))[0][0].shape == (3, 3, 6)
    assert len(ImageFolder(tmp_path, extensions=("jpg", ".png"))) == 5
    assert ImageFolder(tmp_path).samples == ds.samples


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ImageFolder root .*none does not exist"):
        ImageFolder(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="has no class subfolders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a" / "x.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"class folder .*b has no image with a suffix"):
        ImageFolder(tmp_path)
    (tmp_path / "b" / "y.jpg").write_bytes(b"\xff\xd8\xff corrupt")
    ds = ImageFolder(tmp_path)
    with pytest.raises(ValueError, match=r"b/y.jpg could not be decoded"):
        ds[1]
    with pytest.raises(ValueError, match="size must be an int or a"):
        ImageFolder(tmp_path, image_size=(1, 2, 3))
    with pytest.raises(ValueError, match="extensions must be a non-empty sequence"):
        ImageFolder(tmp_path, extensions=".png")


def test_image_datasets_keep_the_wrapper_contract(tmp_path: Path) -> None:
    """(image float32 in [0, 1] of shape (c, h, w), int label) for every plain image dataset."""
    write_cifar(tmp_path / "c")
    write_stl(tmp_path / "s", "train", np.full((1, 3, 96, 96), 255, np.uint8), [3])
    (tmp_path / "f" / "k").mkdir(parents=True)
    Image.fromarray(np.full((6, 6, 3), 255, np.uint8)).save(tmp_path / "f" / "k" / "i.png")
    for ds in (CIFAR100(tmp_path / "c"), STL10(tmp_path / "s"), ImageFolder(tmp_path / "f")):
        image, label = ds[0]
        assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 3
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert isinstance(label, int)
