"""An empty Prefect flow: what Prefect itself costs before any of our code runs."""

from prefect import flow


@flow
def empty() -> None:
    pass


if __name__ == "__main__":
    empty()
