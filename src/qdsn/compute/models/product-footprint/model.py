"""Product carbon footprint: kg CO2e per declared unit from the anchored activity data and the
emission factor table given, in exact decimal arithmetic (`qdsn.footprint.calc`). It passes when the
footprint is at or below the threshold of the low-carbon scheme."""

import sys
from decimal import Decimal

import orjson

from qdsn.errors import InvalidInput
from qdsn.footprint import calc


def main() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    p = job["parameters"]
    records = [r for ds in job["datasets"] for r in ds["records"]]
    try:
        threshold = calc.decimal_of(p["threshold"], "threshold")
        fp = calc.compute(records, p["table"], p["product"])
    except InvalidInput as e:
        sys.stderr.write(f"{e}\n")
        sys.exit(1)
    doc = fp.as_dict() | {"pass": Decimal(fp.pcf) <= threshold, "threshold": p["threshold"]}
    sys.stdout.buffer.write(orjson.dumps(doc))


if __name__ == "__main__":
    main()
