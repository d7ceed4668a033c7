"""Fine-tune a converted checkpoint on labelled videos, then predict with the new class names.

    python examples/finetune.py --quick                  # a few minutes on a 2-core CPU
    python examples/finetune.py [CHECKPOINT] [--arch NAME] [--out DIR] [--epochs N] ...

The chain a user runs on their own data, on generated data: a checkpoint in the official
Caffe2 format is converted to a ``.pt`` (without CHECKPOINT: the official start of every
I3D, the ImageNet ``r50_pretrain_c2_model_iter450450_clean.pkl``, here with seeded weights
since the real file cannot be downloaded, inflated into ``--arch`` as the official code
did: a random 3-D network would be blind to time, an inflated one is not);
``nlconvert.create_model`` puts a new 3-way classifier on it (norms frozen, dropout 0.5, as
the official fine-tuning); videos of a random texture that stands still, slides or
flickers (each video its own texture: only the change over time tells the class; a
horizontal flip, part of the official augmentation, keeps the labels) are read by
``nlconvert.video.TrainingClips`` with the official training sampling; SGD with Nesterov
momentum over ``nlconvert.param_groups``; train/val accuracy per epoch; the model saved;
``predict`` on a held-out video.

The clips are small (short side jittered in [40, 56], 32 x 32 crops, 4 frames every 2nd;
``--crop``, ``--frames``): the architecture is the real R50's, the input is what a CPU can
train on in minutes. By default only the new classifier learns (``--train all``: every
layer; with seeded weights and frozen norms that diverged here at learning rates down to
0.002, while with real converted weights it is the official recipe).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import nlconvert
from nlconvert.arch import top_k
from nlconvert.synthetic import write_synthetic_checkpoint
from nlconvert.training import compute_precise_bn
from nlconvert.video import TrainingClips
from nlconvert.video.predict import predict_video

CLASSES = ["still", "sliding", "flickering"]


def write_video(path: Path, label: int, rng: np.random.Generator, *, frames: int = 24,
                width: int = 96, height: int = 72) -> None:
    """A random texture filling the frame that stands still (label 0), slides (1: up or down,
    a few pixels per frame) or is replaced by a new one every frame (2). Every video has its
    own texture: only how it changes over time tells the class."""
    import av

    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "18", "preset": "ultrafast"}
    speed = float(rng.uniform(1.0, 2.0)) * float(rng.choice([-1.0, 1.0]))
    texture = _texture(rng, height, width)
    for t in range(frames):
        if label == 1:
            picture = np.roll(texture, int(round(speed * t)), axis=0)  # wraps around
        elif label == 2:
            picture = _texture(rng, height, width)
        else:
            picture = texture
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def _texture(rng: np.random.Generator, height: int, width: int, block: int = 6) -> np.ndarray:
    """Random colour cells of `block` x `block` pixels, H x W x 3 uint8."""
    cells = rng.integers(30, 226, (height // block + 1, width // block + 1, 3), dtype=np.uint8)
    return np.kron(cells, np.ones((block, block, 1), np.uint8))[:height, :width]


def write_set(folder: Path, per_class: int, seed: int) -> Path:
    """`per_class` videos of each class and their list file (``<path> <label>``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(per_class):
        for label in range(len(CLASSES)):
            name = f"{label}_{i:03d}.mp4"
            write_video(folder / name, label, rng)
            lines.append(f"{name} {label}")
    listed = folder / "list.txt"
    listed.write_text("\n".join(lines) + "\n")
    return listed


def accuracy(model: torch.nn.Module, loader: torch.utils.data.DataLoader) -> float:
    """Top-1 accuracy of the clip head in eval mode."""
    model.eval()
    right = total = 0
    with torch.no_grad():
        for clips, labels in loader:
            right += int((model(clips).argmax(dim=1) == labels).sum())
            total += len(labels)
    return right / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?",
                        help="a video checkpoint: Caffe2 .pkl/.pb or .pt (default: generate one)")
    parser.add_argument("--arch", default="i3d_baseline_8x8", help="architecture name")
    parser.add_argument("--out", default="finetune_out", help="output directory")
    parser.add_argument("--quick", action="store_true",
                        help="the small run: 8 training and 5 validation videos per class, 12 epochs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-videos", type=int, default=None, help="per class")
    parser.add_argument("--val-videos", type=int, default=None, help="per class")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--train", choices=("head", "all"), default="head",
                        help="what is trained: the new classifier (seeded weights: a full "
                             "fine-tune at these sizes diverges) or every layer")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=4, help="frames per clip (every 2nd)")
    parser.add_argument("--crop", type=int, default=32, help="crop size in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    epochs = args.epochs or (12 if args.quick else 20)
    n_train = args.train_videos or (8 if args.quick else 30)
    n_val = args.val_videos or (5 if args.quick else 10)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # 1. A converted checkpoint. Without one: the official start of every I3D, an ImageNet
    #    R50 in the official Caffe2 format (seeded weights here), inflated to 3-D as the
    #    official code did (kernels repeated along time / kt), converted to a .pt.
    if args.checkpoint:
        source = Path(args.checkpoint)
        if source.suffix != ".pt":
            source, _ = nlconvert.convert_file(source, out / f"{source.stem}.pt", force=True)
    else:
        imagenet = out / "r50_pretrain_c2_model_iter450450_clean.pkl"
        imagenet.unlink(missing_ok=True)
        write_synthetic_checkpoint("r50_imagenet_2d", imagenet, seed=args.seed, fmt="flat")
        source, conv = nlconvert.convert_file(imagenet, out / f"{args.arch}_inflated.pt",
                                              force=True, arch_name=args.arch, inflate=True)
        print(f"converted {imagenet.name} -> {source.name} (inflated; "
              f"{len(conv.mapping.initialised())} blobs initialised officially)")
    # 2. Data: generated videos, the official training sampling at a small size.
    train_list = write_set(out / "videos" / "train", n_train, args.seed + 1)
    val_list = write_set(out / "videos" / "val", n_val, args.seed + 2)
    clip = {"frames": args.frames, "rate": 2, "jitter_scales": (args.crop + 8, args.crop + 24),
            "crop_size": args.crop, "test_scale": args.crop + 8}
    train_set = TrainingClips(train_list, train=True, seed=args.seed, **clip)
    val_set = TrainingClips(val_list, train=False, **clip)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size,
                                               shuffle=True, num_workers=1,
                                               generator=torch.Generator().manual_seed(args.seed))
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size, num_workers=1)
    print(f"data: {len(train_set)} training and {len(val_set)} validation videos "
          f"(chance {100 / len(CLASSES):.0f}%)")

    if not args.checkpoint:
        # Seeded weights carry BN statistics no network produced; a trained checkpoint's are
        # its population statistics. Give it those (the official precise BN) before freezing.
        calibrating = nlconvert.create_model(pretrained=source, norm="train")
        used = compute_precise_bn(calibrating, (c for c, _ in train_loader))
        source = nlconvert.save_model(calibrating.eval(), out / f"{args.arch}_calibrated.pt",
                                      force=True)
        print(f"BN statistics of the generated weights: precise BN over {used} batches")

    # 3. The network to train: a new 3-way head, frozen norms, dropout before the head.
    model = nlconvert.create_model(pretrained=source, class_names=CLASSES, norm="frozen")
    if args.train == "head":  # param_groups holds trainable parameters only
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("head."))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: {model.arch.describe()}; new head for {CLASSES}; training {args.train} "
          f"({trained:,} parameters)")

    # 4. SGD as the official solver: momentum 0.9, Nesterov, weight decay 1e-4 except norms.
    groups = nlconvert.param_groups(model, weight_decay=1e-4)
    optim = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    for epoch in range(1, epochs + 1):
        train_set.set_epoch(epoch)
        model.train()
        losses, right = [], 0
        for clips, labels in train_loader:
            optim.zero_grad()
            logits = model(clips)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            right += int((logits.argmax(dim=1) == labels).sum())
        train_acc = right / len(train_set)  # on the augmented clips, in train() (dropout on)
        val_acc = accuracy(model, val_loader)
        print(f"epoch {epoch}: loss {np.mean(losses):.3f}  train accuracy {100 * train_acc:.0f}%  "
              f"val accuracy {100 * val_acc:.0f}%  ({time.perf_counter() - start:.0f} s)")

    # 5. Save it; it is a model file like any converted one.
    saved = nlconvert.save_model(model.eval(), out / "finetuned.pt", force=True)
    print(f"saved {saved}")

    # 6. A held-out video: the saved model's clip head at the size it was trained at, then
    #    `predict` (the paper's protocol: 256 x 256 views, a scale this small run never saw).
    held_out = out / "videos" / "held_out.mp4"
    write_video(held_out, 1, np.random.default_rng(args.seed + 3))
    (out / "videos" / "held_out.txt").write_text("held_out.mp4 1\n")
    clip_tensor, _ = TrainingClips(out / "videos" / "held_out.txt", train=False, **clip)[0]
    loaded = nlconvert.load_model(saved)
    with torch.no_grad():
        probs = torch.softmax(loaded(clip_tensor[None]), dim=1)[0].numpy()
    print(f"{held_out.name} (a sliding texture), centre clip at the training size:")
    for rank, (_, name, score) in enumerate(top_k(probs, 3, loaded.class_names), 1):
        print(f"  {rank}. {name} {score:.3f}")
    backend = nlconvert.open_backend(saved, backend="torch")
    # The fully-convolutional test head pools the model's training clip length (8) at res5.
    frames = max(args.frames, model.arch.frames)
    pred, _ = predict_video(backend, held_out, "1x1", frames=frames, rate=2, k=3)
    print(f"predict {held_out.name} (one 256 x 256 view):")
    for rank, (_, name, score) in enumerate(pred.topk, 1):
        print(f"  {rank}. {name} {score:.3f}")
    print(f"final val accuracy {100 * val_acc:.0f}% (chance {100 / len(CLASSES):.0f}%) "
          f"in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
