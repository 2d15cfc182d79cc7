"""python -m services.provisioner"""

from flint.service import run
from services.provisioner.handlers import setup

if __name__ == "__main__":
    run("provisioner", setup)
