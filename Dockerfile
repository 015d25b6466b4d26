FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models ./models
COPY tasks ./tasks
COPY worker ./worker
COPY producers ./producers
COPY subscribers ./subscribers
COPY cli ./cli
RUN pip install --no-cache-dir . && useradd --system custody
USER custody
ENTRYPOINT ["custody"]
CMD ["worker"]
