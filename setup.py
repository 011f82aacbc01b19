"""Install with ``pip install -e .[test]``; torch itself is expected to be installed first (CPU or CUDA build)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements() -> list:
    lines = (HERE / 'requirements.txt').read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


setup(
    name='basicsr',
    version='0.1.0',
    description='Registry-driven image restoration toolbox (Restormer, NAFNet, PromptIR, TLC, EnsIR, ...)',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8') if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr', 'basicsr.*']),
    python_requires='>=3.9',
    install_requires=read_requirements(),
    extras_require={'test': ['pytest>=7', 'scipy'], 'vision': ['torchvision']},
    package_data={'basicsr.archs': ['data/*.npy']},  # MiOIR explicit prompt maps
    include_package_data=True,
)
