"""The optional C kernels of the SPC passes (src/qdsn/quality/_kernels.c). Where no C compiler is
at hand the build goes on without them, and qdsn.quality runs the same passes in numpy."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "qdsn.quality._kernels",
            ["src/qdsn/quality/_kernels.c"],
            # no fused multiply-adds: the sums round the same on every processor
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
        # the field arithmetic of Prio3's proofs; where it is not built, privacy/field.py and flp.py do it in Python
        Extension("qdsn.privacy._fields", ["src/qdsn/privacy/_fields.c"], extra_compile_args=["-O3"], optional=True),
    ]
)
