# valuemetric: Slack bot and scheduled reporter.
#   docker build -t valuemetric .
#   docker run -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET -e SLACK_APP_TOKEN \
#     -e VALUEMETRIC_DATABASE_URL=postgresql+psycopg://user@db/valuemetric \
#     -e VALUEMETRIC_CONFIG=/config/config.toml -v "$PWD/config.toml:/config/config.toml:ro" \
#     valuemetric
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY analysis ./analysis
COPY bot ./bot
RUN pip install '.[postgres]' \
    && useradd --create-home --uid 10001 valuemetric \
    && rm -rf /src

USER valuemetric
WORKDIR /home/valuemetric
# HTTP mode listens here (valuemetric serve --http); Socket Mode needs no port.
EXPOSE 3000
CMD ["valuemetric", "serve"]
