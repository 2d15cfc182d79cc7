from flint.service import run

from .app import setup

run("inventory", setup)
