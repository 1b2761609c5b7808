# Lethe's Airflow image: the official Apache Airflow 3.3.2 image for Python 3.11 (the project
# requires 3.11), the exact pins of requirements.txt, and the Lethe engine. docker-compose.yaml
# builds it; the Helm values in deploy/helm/values.yaml run the same image.
FROM apache/airflow:3.3.2-python3.11

# estate-init applies the least-privilege role scripts with psql and the mariadb client. They are
# installed here, in the one image, rather than in a second image for a one-shot service: the
# official image's build defaults may already bring both, and naming them makes the dependency
# explicit either way (apt installs nothing that is already there).
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client mariadb-client \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# The official "adding packages from requirements.txt" pattern: naming the image's own Airflow
# version keeps pip from changing Airflow while it installs the exact pins.
COPY --chown=airflow:root requirements.txt /opt/lethe/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/lethe/requirements.txt

# The engine, installed like `make install` does but not editable: the image carries its own copy.
# No build isolation, so the pinned setuptools and wheel build it (nothing unpinned is fetched).
COPY --chown=airflow:root pyproject.toml /opt/lethe/src/pyproject.toml
COPY --chown=airflow:root include/ /opt/lethe/src/include/
RUN pip install --no-cache-dir --no-deps --no-build-isolation /opt/lethe/src

# An installed package does not sit next to include/policy and include/inventory, so the engine is
# told where they are. The image carries a copy; docker-compose.yaml mounts ./include over it, so a
# policy or inventory change needs no rebuild (a change to include/lethe/ does).
COPY --chown=airflow:root include/policy/ /opt/airflow/include/policy/
COPY --chown=airflow:root include/inventory/ /opt/airflow/include/inventory/
ENV LETHE_POLICY_FILE=/opt/airflow/include/policy/retention.yaml \
    LETHE_INVENTORY_DIR=/opt/airflow/include/inventory
