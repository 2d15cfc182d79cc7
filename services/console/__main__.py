"""python -m services.console"""

from flint.service import run
from services.console.handlers import setup

if __name__ == "__main__":
    run("console", setup)
