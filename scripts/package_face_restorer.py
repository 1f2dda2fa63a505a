"""Packages a face restoration training run as the platform's model, committed under
models/enhancer/face-restore/.

    python scripts/package_face_restorer.py --run .run/face-restore --data ../shared/data/dfdc-faces

Copies the best weights (fp16, BasicSR layout), measures them in the same run against bicubic and
the super-resolution networks on bicubic-x4-degraded validation faces (PSNR/SSIM/NIQE as BasicSR
computes them), writes a contact sheet, card.json and MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces  # noqa: E402,F401  (torch stack first: see dfp.faces)
from dfp.provenance import code_version  # noqa: E402
from services.enhancer import evaluation, face_restorers  # noqa: E402
from services.enhancer.training.face_restore_train import BEST, HISTORY, SETTINGS  # noqa: E402

OUT = REPO / "models" / "enhancer" / "face-restore"


def render(card: dict) -> str:
    rows = "\n".join(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['niqe']:.2f} |"
                     for name, m in card["evaluation"]["methods"].items())
    history = "\n".join(f"| {h['step']} | {h['loss']:.4f} | {h['psnr']:.2f} | {h['ssim']:.4f} |" for h in card["history"])
    settings = card["settings"]
    best = card["best"]
    stages = "; then ".join(f"`{stage['command']}` ({stage['steps']} steps, lr {stage['learning_rate']})"
                            for stage in card["stages"])
    return f"""# Model card: face-restore, the platform's face restoration network

- **Architecture**: FaceRestoreUNet (services/enhancer/archs/face_restore_arch.py), num_feat
  {settings['num_feat']}, num_block {settings['num_block']}: {card['parameters']:,} parameters; a U-Net at half
  resolution and below (2x2 pixel-unshuffle in, pixel-shuffle out) that predicts a residual over its input.
  Input and output: a face at output size, RGB in [0, 1]; sides multiples of 8.
- **Weights**: `face_restore.pth`, BasicSR layout (`params`), fp16; sha256 `{card['sha256']}`.
- **Data**: `dfdc-faces` (Deepfake Detection Challenge face crops of consenting paid actors, research use
  under the DFDC terms): the first {settings['train_faces']} real faces of the train split; the first
  {settings['val_faces']} real faces of the val split for model selection; the evaluation below uses
  {card['evaluation']['images']} real val faces.
- **Training**: {stages}; batch {settings['batch_size']} of {settings['patch']}x{settings['patch']} patches, Adam
  (cosine schedule), L1 loss, on {settings['device']} (this project's 2-core machine). Degradation on the
  fly (BasicSR style): Gaussian blur sigma 0.1-3, downscale x1-8, Gaussian noise sigma 0-10, JPEG quality
  50-95, bicubic back up; in the fine-tuning, 30% of faces instead get the classic bicubic x2/x3/x4 down
  and up alone. The weights kept are those of step {best['step']} of the last stage, its best held-out PSNR.
- **Code version**: trained with `{settings['code_version']}`, packaged with `{card['code_version']}`.
- **Intended use**: restoring faces in low-quality images and frames, to make test material for
  detectors (the seed paper's question: does restoration hide deepfakes?). Outputs are labelled as
  machine-made. It is small and trained briefly on a CPU; the published DFDNet (`--dfdnet-checkpoint`)
  is the reference method when its files are at hand.

## Bicubic x4 degraded faces (the evaluation the issue asks for)

{card['evaluation']['images']} real val faces (224x224), bicubic x4 down to 56x56, restored to 224x224 by each
method; PSNR and SSIM on Y with a crop border of 4, NIQE (no reference, lower is better), all computed by
BasicSR 1.4.2. The face restoration network gets the bicubic upscale as input. LPIPS is not reported:
its network weights are not available offline here.

| method | PSNR (dB) | SSIM | NIQE |
|---|---|---|---|
{rows}

DFDC crops are enlarged from small faces in video frames and are soft, so bicubic interpolation
reconstructs them well; Real-ESRGAN x4plus, trained to restore real-world photographs with a GAN, adds
texture that is not in the reference: the best NIQE (most natural-looking statistics) and the lowest
PSNR, as GAN restorers have in the literature.

The contact sheet `evaluation_sheet.jpg` shows, per row: the degraded input (pixels enlarged), each method,
the reference.

## Training history of the last stage (held-out faces with mixed degradation, fixed seed)

Degraded input PSNR: {best['input_psnr']:.2f} dB.

| step | loss | PSNR (dB) | SSIM |
|---|---|---|---|
{history}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    weights = OUT / BEST
    shutil.copyfile(args.run / BEST, weights)
    settings = json.loads((args.run / SETTINGS).read_text())
    stages = [settings]
    while stages[0].get("init"):
        stages.insert(0, json.loads((pathlib.Path(stages[0]["init"]).parent / SETTINGS).read_text()))
    history = [json.loads(line) for line in (args.run / HISTORY).read_text().splitlines()]
    references = evaluation.reference_images(args.data, "val", args.images, label="real")
    methods = evaluation.methods_by_name(["bicubic", "srvgg-x4", "esrgan-x4", "face"], "cpu", face_weights=weights)
    report = evaluation.evaluate(references, methods, 4, OUT / "evaluation_sheet.jpg", sheet_rows=4)
    restorer = face_restorers.load_unet(weights)
    card = {
        "name": "face-restore", "architecture": "FaceRestoreUNet",
        "parameters": sum(p.numel() for p in restorer.model.parameters()),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "settings": settings, "stages": stages,
        "history": history,
        "best": max(history, key=lambda h: h["psnr"]), "evaluation": report, "code_version": code_version(),
    }
    (OUT / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (OUT / "MODEL_CARD.md").write_text(render(card))
    print(json.dumps(report["methods"], indent=2))


if __name__ == "__main__":
    main()
