"""Deterministic procedural dataset in the MVTec AD folder layout.

:func:`generate_dataset` paints industrial-looking RGB images (ceramic tiles, brushed metal, woven fabric, wood, a
hex nut on a conveyor, a long narrow steel strip with hairline cracks) and five defect types (``scratch``, ``hole``,
``crack``, ``stain``, ``missing``) with exact ground-truth masks, and writes them where anomalib's ``MVTecAD`` and
``Folder`` datamodules look for them::

    root/category/train/good/000.png
    root/category/test/good/000.png
    root/category/test/<defect>/000.png
    root/category/ground_truth/<defect>/000_mask.png
    root/category/manifest.json

Determinism: every image draws from its own ``numpy.random.Generator`` seeded with
``[seed, category, split, defect, index, stream]``, so a given set of parameters always gives byte-identical PNGs, and
changing one count or the list of defects leaves the other images untouched.

Mask semantics: a defect is painted on the clean image with a soft alpha; the mask holds exactly the pixels whose
8-bit value moved by at least :data:`~.spec.MIN_CHANGE` grey levels in some channel, and every other pixel is reset to
the clean image. So pixels outside the mask are byte-identical to the clean image (see :func:`render_sample`), and
every pixel inside it changed noticeably. The faint fringe of soft-edged defects (below ``MIN_CHANGE``) is dropped.

Modules: :mod:`~.spec` (categories, defect types, limits, :class:`~.spec.DatasetSpec`), :mod:`~.fields` (noise and
lighting), :mod:`~.backgrounds` (the clean surface per category), :mod:`~.defects` (the defect painters),
:mod:`~.render` (one image and its mask) and :mod:`~.dataset` (the files and the manifest). This package re-exports
the generator, the renderer, the categories and the defect types; the rest (the limits, ``image_hw``, ``SURFACES``,
``DEFECTS``, ``SyntheticSample``, ...) is imported from its module.

Only numpy and OpenCV are used, and nothing is downloaded.
"""

from isstad_plugin.data.synthetic.dataset import generate_dataset
from isstad_plugin.data.synthetic.render import render_sample
from isstad_plugin.data.synthetic.spec import CATEGORIES, DEFECT_TYPES

__all__ = ["CATEGORIES", "DEFECT_TYPES", "generate_dataset", "render_sample"]
