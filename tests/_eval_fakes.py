"""Fake sequence models and data with closed-form features, shared by the evaluation tests.

A fake model implements the SequenceModel contract with closed-form outputs (encode: a fixed
linear map of the flattened view; aggregate: sums of z and of the actions with the last one
zeroed, plus the token count), so every extracted feature has an exact oracle.
"""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jepa_blocks.actions import relative_rotation_from_euler
from jepa_blocks.eval import absolute_rotation_target

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
C, H, W, DV, DA = 1, 3, 3, 5, 4


class FakeModel(nn.Module):
    """encode = fixed linear map per view; aggregate = [sum z ; sum a (last zeroed) ; m]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(C * H * W, DV, bias=False)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            self.proj.weight.copy_(torch.randn(DV, C * H * W, generator=g))
        self.norm = nn.BatchNorm1d(DV)  # only there to have a mode-dependent submodule
        self.calls: list[dict] = []

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        self.calls.append({"fn": "encode", "shape": tuple(views.shape), "training": self.training,
                           "grad": torch.is_grad_enabled()})
        return self.proj(views.flatten(2))

    def aggregate(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls.append({"fn": "aggregate", "z": z.clone(), "actions": actions.clone(),
                           "training": self.training})
        tokens = actions.clone()
        tokens[:, -1] = 0  # the last token carries no action
        count = torch.full((z.shape[0], 1), float(z.shape[1]), device=z.device)
        return torch.cat((z.sum(1), tokens.sum(1), count), dim=-1)


def oracle_z(views: torch.Tensor, model: FakeModel) -> torch.Tensor:
    return views.flatten(2) @ model.proj.weight.detach().T


class RotationSequences(Dataset):
    """Rotation sequences: label-dependent views, 3DIEBench-like latents and relative actions."""

    def __init__(self, n: int, views: int, seed: int, num_classes: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, num_classes, (n,), generator=g)
        centres = torch.randn(num_classes, C, H, W, generator=torch.Generator().manual_seed(99))
        self.views = centres[self.label][:, None] + 0.1 * torch.randn(
            n, views, C, H, W, generator=g
        )
        euler = (torch.rand(n, views, 3, generator=g) - 0.5) * math.pi
        self.latents = torch.cat((euler, torch.rand(n, views, 4, generator=g)), -1)
        self.actions = relative_rotation_from_euler(euler)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {"views": self.views[i], "actions": self.actions[i], "label": self.label[i],
                "latents": self.latents[i]}


def loader(n: int = 24, views: int = 5, seed: int = 0, batch_size: int = 8, **kw) -> DataLoader:
    return DataLoader(RotationSequences(n, views, seed, **kw), batch_size=batch_size)


def full(data: DataLoader, key: str) -> torch.Tensor:
    return getattr(data.dataset, key)


class OrientedObjects:
    """Objects seen from several orientations; each view's 3x3 image holds its orientation
    quaternion in the first 4 pixels and a little noise (nothing about the class).

    ``views()`` is a per-view dataset (items as RenderedObjects': image, latents, object,
    label); ``sequences(k)`` gives sequences of the first k views of each object.
    """

    def __init__(self, objects: int, views: int, seed: int, num_classes: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.label = torch.randint(0, num_classes, (objects,), generator=g)
        euler = (torch.rand(objects, views, 3, generator=g) - 0.5) * math.pi
        self.latents = torch.cat((euler, torch.rand(objects, views, 4, generator=g)), -1)
        pixels = 0.01 * torch.randn(objects, views, C * H * W, generator=g)
        pixels[..., :4] += absolute_rotation_target(self.latents)
        self.images = pixels.reshape(objects, views, C, H, W)
        self.actions = relative_rotation_from_euler(euler)

    def views(self) -> Dataset:
        outer = self

        class Views(Dataset):
            def __len__(self) -> int:
                return outer.images.shape[0] * outer.images.shape[1]

            def __getitem__(self, i: int) -> dict:
                obj, view = divmod(i, outer.images.shape[1])
                return {"image": outer.images[obj, view], "latents": outer.latents[obj, view],
                        "object": torch.tensor(obj), "label": outer.label[obj]}

        return Views()

    def sequences(self, k: int, batch_size: int = 16) -> DataLoader:
        outer = self

        class Sequences(Dataset):
            def __len__(self) -> int:
                return outer.images.shape[0]

            def __getitem__(self, i: int) -> dict:
                return {"views": outer.images[i, :k], "actions": outer.actions[i, : k - 1],
                        "latents": outer.latents[i, :k], "label": outer.label[i],
                        "index": torch.tensor(i)}

        return DataLoader(Sequences(), batch_size=batch_size)


class ConstantModel(FakeModel):
    """The same contract with an encoder that ignores its input (a floor that finds nothing)."""

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*views.shape[:2], DV) + 0.0 * self.proj.weight.sum()
