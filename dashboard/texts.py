"""Help text shown on several pages: metric headers and what the numbers mean."""

from __future__ import annotations

import core


def metric_header(name: str) -> str:
    info = core.METRICS[name]
    return f"{info.title} {info.arrow}"


METRICS_EXPLAINED = """
* **PSNR** (dB, higher is better) and **SSIM** (0-1, higher is better) compare the result with a
  reference pixel by pixel. They need a reference: an HR image of the same scene, or your image
  itself after "downscale my image first".
* **NIQE** (lower is better) needs no reference: it measures how far the image's local statistics
  are from those of natural photos.
* **Why a GAN model can score a lower PSNR than bicubic but a better NIQE**: bicubic (and models
  trained for PSNR) produce the average of all plausible sharp images, a smooth result that is
  never far from the truth pixel by pixel. Real-ESRGAN is trained with perceptual and adversarial
  losses to draw *one* plausible sharp image: its textures look natural (better NIQE) but are not
  the reference's exact pixels, and every misplaced detail costs PSNR. Trust your eyes in the
  slider; use PSNR / SSIM for fidelity, NIQE for naturalness.
* **LPIPS** and **DISTS** (lower is better, 0 for identical images) compare the result with the
  reference through the features of an ImageNet network (AlexNet or VGG-16) with weights their
  authors learned from human judgements. They forgive a texture drawn slightly differently, so
  they side with the eye more often than PSNR does, and papers on real-world super-resolution
  report them next to PSNR / SSIM. They need network weights: the Models & System page lists and
  downloads them (or `realesrgan-studio metrics --download lpips-alex,dists`); until then they
  are not offered.
* **Learned no-reference metrics** (higher is better) are networks that score one image alone.
  **MUSIQ** is a transformer trained on KonIQ-10k's human ratings of photos (a predicted mean
  opinion score, about 0-100); **CLIP-IQA** (0-1) asks CLIP whether the image looks more like a
  good or a bad photo. They need their authors' published weights (the Models & System page, or
  `realesrgan-studio metrics --download musiq,clipiqa`). They often disagree with each other and
  with NIQE, they were trained on photos rather than on upscaler artefacts, and a model can learn
  to please one: read several, and never one alone. MANIQA, TOPIQ and LIQE come with the optional
  pyiqa extra (`pip install -e '.[pyiqa]'`, non-commercial licence).
"""
