"""The tiny random builds behind the ``tiny-<name>`` generators, kept apart from the runtime generators.

``tiny-svd``, ``tiny-cogvideox``, ``tiny-ltx``, ``tiny-wan`` and ``tiny-i2vgen`` run a production
generator's code (:mod:`gva.generate.svd`, :mod:`gva.generate.i2v` and the family modules) on tiny
randomly initialised pipelines built here, locally and with fixed seeds: the offline demo
(``scripts/repro.sh --offline``), the tests and the CPU benchmarks use them. Their clips are
structured noise: for offline runs and tests, never for results.

Why a package of its own, outside :mod:`gva.generate`: no production generator, nor the stage,
the runner or the registry's factory, imports anything here. The registry names the ``tiny-*``
generators by reference (``"gva.tiny.svd:TinySvdGenerator"``) and imports the module only when
such a generator is asked for, so a run of ``svd``, ``wan`` or ``motion`` never loads a test
build, and the word list or a tiny config never enters their cache keys
(:mod:`gva.generate.provenance`). One module per build, each with its generator class:

* :mod:`~gva.tiny.svd` -- diffusers' SVD test configuration;
* :mod:`~gva.tiny.cogvideox`, :mod:`~gva.tiny.ltx`, :mod:`~gva.tiny.wan`, :mod:`~gva.tiny.i2vgen`
  -- diffusers' pipeline-test ``get_dummy_components`` sizes (``tests/pipelines/{cogvideo,ltx,wan}``,
  ``i2vgen_xl/test_i2vgenxl.py`` before its removal in diffusers#11879), with the changes listed in
  each builder so that the tiny model takes the *real* model's code paths and call rules (same
  latent compression ratios, scheduler, text length, image tokens);
* :mod:`~gva.tiny.tokenizers` -- their tokenizers and text encoders, built locally;
* :mod:`~gva.tiny.base` -- the saved model directory and the :class:`~gva.tiny.base.TinyModel` mixin.

The full-size random architectures of the cost benchmark live in ``benchmarks/full_builds.py``.
"""
