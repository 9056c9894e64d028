"""The jars a local Spark session needs for Iceberg, found or built from installed packages.

No Maven here: the Iceberg Spark runtime comes from the ``snowpark-connect-deps-iceberg``
wheel (a dependency of the ``spark`` extra). That jar's classes reference
``org.apache.iceberg.shaded.com.fasterxml.jackson.*`` but it does not ship them, so a second
jar is built once from pyspark's own Jackson 2.15.2 jars, relocated with Debian's ``jarjar``
(package ``libjarjar-java``) and cached under ``<LEANOPS_HOME>/spark-jars/``. The JDBC drivers
of the Iceberg JDBC catalog come from Debian (``libxerial-sqlite-jdbc-java``,
``libpostgresql-jdbc-java``).

With internet, ``LEANOPS_SPARK_JARS_PACKAGES`` (Maven coordinates) replaces all of this.

``leanops spark-jars`` (``cli/pipeline.py``, which hands it the settings' cache) builds what is
missing and prints the jars (``make setup`` runs it); it exits 1 naming the missing piece when
it cannot.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

ICEBERG_RUNTIME_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
JACKSON_JARS = (
    "jackson-core-2.15.2.jar",
    "jackson-databind-2.15.2.jar",
    "jackson-annotations-2.15.2.jar",
)
JACKSON_RELOCATION = (
    "rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1"
)
RELOCATED_JACKSON_JAR = "iceberg-shaded-jackson-2.15.2.jar"

DEBIAN_JAVA = Path("/usr/share/java")
JARJAR_JAR = DEBIAN_JAVA / "jarjar.jar"
SQLITE_JDBC_JAR = DEBIAN_JAVA / "sqlite-jdbc.jar"
POSTGRESQL_JDBC_JAR = DEBIAN_JAVA / "postgresql.jar"
DEBIAN_PACKAGES = {
    JARJAR_JAR: "libjarjar-java",
    SQLITE_JDBC_JAR: "libxerial-sqlite-jdbc-java",
    POSTGRESQL_JDBC_JAR: "libpostgresql-jdbc-java",
}

#: Maven coordinates of the same runtime, for ``spark.jars.packages`` with internet access
MAVEN_PACKAGES = (
    "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0,"
    "org.xerial:sqlite-jdbc:3.46.1.3,org.postgresql:postgresql:42.7.4"
)


class SparkJarsMissing(RuntimeError):
    """A piece local Spark needs is not installed; the message names it and how to get it."""


def _package_dir(module: str, extra_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SparkJarsMissing(f"Python package {module!r} is not installed ({extra_hint})")
    return Path(spec.origin).parent


def iceberg_runtime_jar() -> Path:
    """The Iceberg Spark runtime inside the installed ``snowpark-connect-deps-iceberg``."""
    jar = _package_dir(
        "snowpark_connect_deps_iceberg", "install the spark extra: make setup"
    ) / "jars" / ICEBERG_RUNTIME_JAR
    if not jar.is_file():
        raise SparkJarsMissing(f"{jar} is missing from snowpark-connect-deps-iceberg")
    return jar


def pyspark_jars_dir() -> Path:
    return _package_dir("pyspark", "install the spark extra: make setup") / "jars"


def debian_jar(path: Path) -> Path:
    """A jar Debian installs, or ``SparkJarsMissing`` naming its package."""
    if not path.is_file():
        raise SparkJarsMissing(
            f"{path} not found: install Debian's {DEBIAN_PACKAGES[path]} "
            f"(apt-get install -y --no-install-recommends {DEBIAN_PACKAGES[path]}; make setup "
            "does it when run as root)"
        )
    return path


def _merge_jars(sources: list[Path], target: Path) -> None:
    """One jar holding the classes of ``sources``. Multi-release and module descriptors are
    left out: jarjar 1.4 cannot rewrite them and Spark does not need them."""
    seen: set[str] = set()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for source in sources:
            with zipfile.ZipFile(source) as jar:
                for entry in jar.infolist():
                    name = entry.filename
                    if (
                        name in seen or entry.is_dir() or name.endswith("module-info.class")
                        or name.startswith("META-INF/versions/")
                        or name.startswith("META-INF/services/")
                        or name == "META-INF/MANIFEST.MF"
                    ):
                        continue
                    seen.add(name)
                    out.writestr(entry, jar.read(name))


def relocated_jackson_jar(cache_dir: Path) -> Path:
    """pyspark's Jackson relocated to Iceberg's shaded package, built once into ``cache_dir``.

    The file name carries a digest of the inputs and the rule, so a pyspark upgrade (other
    Jackson jars) builds a new one instead of reusing a stale jar.
    """
    sources = [pyspark_jars_dir() / name for name in JACKSON_JARS]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise SparkJarsMissing(
            f"pyspark lacks the Jackson jars {missing} (pyspark 3.5.7 ships them)"
        )
    digest = hashlib.sha256(JACKSON_RELOCATION.encode())
    for source in sources:
        digest.update(source.name.encode())
        digest.update(str(source.stat().st_size).encode())
    target = cache_dir / f"{Path(RELOCATED_JACKSON_JAR).stem}-{digest.hexdigest()[:12]}.jar"
    if target.is_file():
        return target
    jarjar = debian_jar(JARJAR_JAR)
    java = shutil.which("java")
    if java is None:
        raise SparkJarsMissing("no `java` on PATH: Spark needs a Java 17 runtime")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        merged, rules = Path(work) / "jackson.jar", Path(work) / "rules.txt"
        _merge_jars(sources, merged)
        rules.write_text(JACKSON_RELOCATION + "\n")
        built = Path(work) / target.name
        subprocess.run(
            [java, "-jar", str(jarjar), "process", str(rules), str(merged), str(built)],
            check=True, capture_output=True, text=True,
        )
        built.replace(target)  # atomic: a concurrent build never sees half a jar
    return target


def local_jars(cache_dir: Path, *, jdbc: tuple[Path, ...] = (SQLITE_JDBC_JAR,)) -> list[Path]:
    """Every jar a ``local[*]`` session needs: Iceberg runtime, relocated Jackson, the JDBC
    drivers of ``jdbc``."""
    return [
        iceberg_runtime_jar(),
        relocated_jackson_jar(cache_dir),
        *(debian_jar(path) for path in jdbc),
    ]

