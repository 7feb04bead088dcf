from qdsn.cli.main import run

if __name__ == "__main__":  # worker processes import this module again; only the parent runs
    run()
