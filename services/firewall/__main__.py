"""python -m services.firewall"""

from flint.service import run
from services.firewall.handlers import setup

if __name__ == "__main__":
    run("firewall", setup)
