"""`python -m pixelcnn.sample`: the sampling command line (pixelcnn/sample_cli.py).

Only the entry point: `python -m` runs this file without binding it to the package, so
`pixelcnn.sample` stays the sampling function. Import the command from pixelcnn.sample_cli.
"""
import sys

from pixelcnn.sample_cli import main

if __name__ == "__main__":
    main(sys.argv[1:])
