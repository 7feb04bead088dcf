"""The fully linear proof of draft-irtf-cfrg-vdaf-20 §7.3 (after BBCGGI19): gadgets, the prove/query
shims, the validity circuits of the Prio3 variants, and prove / query / decide.

A validity circuit is an arithmetic circuit over the encoded measurement whose outputs are all zero
exactly when the measurement is valid; its non-affine parts are gadget calls. The prover (the client)
records each gadget's input wires, interpolates them into wire polynomials and sends the gadget
polynomial; a verifier holding only a secret share of the measurement and of the proof evaluates the
circuit with the gadget polynomial standing in for each gadget, and tests the gadget polynomial against
the wire polynomials at a random point. Every step is linear in the shares, so the aggregators' verifier
shares add up to the verifier, which `decide` checks. Polynomials are in the Lagrange basis over roots
of unity, as in the draft; the results are the same field elements as its pseudocode, byte for byte.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from qdsn.privacy import field as field_mod
from qdsn.privacy.field import Field, Field64, Field128, assert_power_of_2, next_power_of_2

# ---- polynomials in the Lagrange basis (§6.1.3.2) -----------------------------------------------------


def poly_eval_batched(field: type[Field], polys: list[list[int]], x: int) -> list[int]:
    """Each polynomial (n evaluations at the n-th roots of unity, n a power of two) evaluated at x."""
    mod = field.MODULUS
    n = len(polys[0])
    nodes = field.nth_root_powers(n)
    ops = _kernel(field)
    if ops is not None:
        return ops[0](polys, nodes, x, _eval_factor(field, n))
    # k_i·node_i·Π_{j>i}(node_j − x) weighs p[i]: the draft's loop, with the weights shared by all polys
    d = [(w - x) % mod for w in nodes]
    weights = [0] * n
    k = 1
    for i in range(1, n):
        k = k * d[i - 1] % mod
        weights[i] = k * nodes[i] % mod
    suffix = 1
    for i in range(n - 1, 0, -1):
        weights[i] = weights[i] * suffix % mod
        suffix = suffix * d[i] % mod
    weights[0] = suffix  # p[0]·Π_{j≥1}(node_j − x)
    factor = _eval_factor(field, n)
    return [sum(w * v for w, v in zip(weights, p, strict=True)) % mod * factor % mod for p in polys]


def _kernel(field: type[Field]) -> tuple[Any, Any] | None:
    """The C kernel's (eval_batched, dot) for `field`, or None to compute in Python."""
    k = field_mod.kernel
    if k is None:
        return None
    if field is Field64:
        return k.eval_batched, k.dot
    if field is Field128:
        return k.eval_batched128, k.dot128
    return None


@cache
def _eval_factor(field: type[Field], n: int) -> int:
    return (-1 if (n - 1) % 2 else 1) * field.inv_const(n) % field.MODULUS


def double_evaluations(field: type[Field], p: list[int]) -> list[int]:
    """2n evaluations (at the 2n-th roots) of the polynomial given by n evaluations at the n-th roots."""
    n = len(p)
    odd = field.ntt(field.inv_ntt(p, n), n, True)
    out = [0] * (2 * n)
    out[0::2] = p
    out[1::2] = odd
    return out


@cache
def _extension(field: type[Field], length: int, n: int) -> tuple[tuple[int, ...], ...]:
    """For k in [length, n): the weights c[k][i] with p(x_k) = Σ c[k][i]·p(x_i), p of degree < length,
    x the n-th roots of unity. The draft's `extend_values_to_power_of_2` appends exactly these values;
    as a fixed linear map it is computed once per size instead of once per call."""
    mod = field.MODULUS
    x = field.nth_root_powers(n)
    denom = [1] * length
    for i in range(length):
        for j in range(length):
            if i != j:
                denom[i] = denom[i] * (x[i] - x[j]) % mod
    rows = []
    for k in range(length, n):
        row = []
        for i in range(length):
            num = 1
            for j in range(length):
                if j != i:
                    num = num * (x[k] - x[j]) % mod
            row.append(num * field.inv(denom[i]) % mod)
        rows.append(tuple(row))
    return tuple(rows)


def extend_values_to_power_of_2(field: type[Field], p: list[int], n: int) -> list[int]:
    """`p` (evaluations at the first len(p) n-th roots) followed by its evaluations at the remaining roots."""
    assert_power_of_2(n)
    mod = field.MODULUS
    ops = _kernel(field)
    if ops is not None:
        return p + [ops[1](row, p) for row in _extension(field, len(p), n)]
    return p + [sum(c * v for c, v in zip(row, p, strict=True)) % mod for row in _extension(field, len(p), n)]


def poly_eval(field: type[Field], p: list[int], x: int) -> int:
    """p(x) for p in the monomial basis (coefficients from the constant term up)."""
    mod, out = field.MODULUS, 0
    for c in reversed(p):
        out = (out * x + c) % mod
    return out


def wire_poly_len(gadget_calls: int) -> int:
    return next_power_of_2(1 + gadget_calls)


def gadget_poly_len(gadget_degree: int, wire_polynomial_len: int) -> int:
    return gadget_degree * (wire_polynomial_len - 1) + 1


# ---- gadgets (appendix A) ------------------------------------------------------------------------------


class Gadget:
    ARITY: int
    DEGREE: int

    def eval(self, field: type[Field], inp: list[int]) -> int:
        raise NotImplementedError

    def eval_poly(self, field: type[Field], inp_poly: list[list[int]]) -> list[int]:
        raise NotImplementedError


class Mul(Gadget):
    """x · y."""

    ARITY = 2
    DEGREE = 2

    def eval(self, field: type[Field], inp: list[int]) -> int:
        return inp[0] * inp[1] % field.MODULUS

    def eval_poly(self, field: type[Field], inp_poly: list[list[int]]) -> list[int]:
        mod = field.MODULUS
        p, q = double_evaluations(field, inp_poly[0]), double_evaluations(field, inp_poly[1])
        return [a * b % mod for a, b in zip(p, q, strict=True)]


class PolyEval(Gadget):
    """p(x) for a fixed polynomial p (integer coefficients, constant term first)."""

    ARITY = 1

    def __init__(self, p: list[int], num_calls: int) -> None:
        while len(p) > 1 and p[-1] == 0:
            p = p[:-1]
        if not p or (len(p) == 1 and p[0] == 0):
            raise ValueError("invalid polynomial: zero length")
        self.p = p
        self.DEGREE = len(p) - 1
        self.n = next_power_of_2(gadget_poly_len(self.DEGREE, wire_poly_len(num_calls)))

    def eval(self, field: type[Field], inp: list[int]) -> int:
        return poly_eval(field, self._coefficients(field), inp[0])

    def eval_poly(self, field: type[Field], inp_poly: list[list[int]]) -> list[int]:
        inp_len = len(inp_poly[0])
        inp_lag = field.ntt(field.inv_ntt(inp_poly[0], inp_len), self.n)
        p_mon, mod = self._coefficients(field), field.MODULUS
        out = [p_mon[-1]] * len(inp_lag)
        for c in reversed(p_mon[:-1]):  # Horner's rule over all the points at once
            out = [(o * x + c) % mod for o, x in zip(out, inp_lag, strict=True)]
        return out

    def _coefficients(self, field: type[Field]) -> list[int]:
        if getattr(self, "_field", None) is not field:
            self._field, self._mod_p = field, [c % field.MODULUS for c in self.p]
        return self._mod_p


class ParallelSum(Gadget):
    """The sum of `count` calls of a subcircuit on consecutive slices of the input."""

    def __init__(self, subcircuit: Gadget, count: int) -> None:
        self.subcircuit = subcircuit
        self.count = count
        self.ARITY = subcircuit.ARITY * count
        self.DEGREE = subcircuit.DEGREE

    def eval(self, field: type[Field], inp: list[int]) -> int:
        a, mod = self.subcircuit.ARITY, field.MODULUS
        if isinstance(self.subcircuit, Mul):  # the common case, without a call per pair
            return sum(inp[i] * inp[i + 1] for i in range(0, len(inp), 2)) % mod
        return sum(self.subcircuit.eval(field, inp[i * a : (i + 1) * a]) for i in range(self.count)) % mod

    def eval_poly(self, field: type[Field], inp_poly: list[list[int]]) -> list[int]:
        mod, a = field.MODULUS, self.subcircuit.ARITY
        length = next_power_of_2(gadget_poly_len(self.DEGREE, len(inp_poly[0])))
        out = [0] * length
        for i in range(self.count):
            current = self.subcircuit.eval_poly(field, inp_poly[i * a : (i + 1) * a])
            out = [(x + y) % mod for x, y in zip(out, current, strict=False)]
        return out


class ProveGadget(Gadget):
    """Records the input wires of each call (wire 0 holds the seed), and evaluates the gadget itself."""

    def __init__(self, field: type[Field], wire_seeds: list[int], g: Gadget, g_calls: int) -> None:
        p = wire_poly_len(g_calls)
        self.inner, self.ARITY, self.DEGREE = g, g.ARITY, g.DEGREE
        self.wires = [[s] + [0] * (p - 1) for s in wire_seeds]
        self.k = 0

    def eval(self, field: type[Field], inp: list[int]) -> int:
        self.k += 1
        for wire, v in zip(self.wires, inp, strict=True):
            wire[self.k] = v
        return self.inner.eval(field, inp)


class QueryGadget(Gadget):
    """Records the input wires of each call, and answers each call from the proof's gadget polynomial."""

    def __init__(self, field: type[Field], wire_seeds: list[int], gadget_poly: list[int], g: Gadget, g_calls: int):
        p = wire_poly_len(g_calls)
        self.ARITY, self.DEGREE = g.ARITY, g.DEGREE
        self.wires = [[s] + [0] * (p - 1) for s in wire_seeds]
        self.k = 0
        n = next_power_of_2(len(gadget_poly))
        poly = extend_values_to_power_of_2(field, list(gadget_poly), n)
        size = next_power_of_2(gadget_poly_len(g.DEGREE, p))
        while len(poly) < size:
            poly = double_evaluations(field, poly)
        self.poly = poly
        self.step = 1 << (assert_power_of_2(size) - assert_power_of_2(p))

    def eval(self, field: type[Field], inp: list[int]) -> int:
        self.k += 1
        for wire, v in zip(self.wires, inp, strict=True):
            wire[self.k] = v
        return self.poly[self.k * self.step]


# ---- validity circuits (§7.4) --------------------------------------------------------------------------


class Valid:
    """A validity circuit. `eval` takes the gadgets to call, so that the prover and the verifier can pass
    their recording shims (the draft's `wrap`) without copying the circuit."""

    field: type[Field]
    GADGETS: list[Gadget]
    GADGET_CALLS: list[int]
    MEAS_LEN: int
    JOINT_RAND_LEN: int
    EVAL_OUTPUT_LEN: int
    OUTPUT_LEN: int

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        raise NotImplementedError

    def encode(self, measurement: Any) -> list[int]:
        raise NotImplementedError

    def truncate(self, meas: list[int]) -> list[int]:
        raise NotImplementedError

    def decode(self, output: list[int], num_measurements: int) -> Any:
        raise NotImplementedError

    def prove_rand_len(self) -> int:
        return sum(g.ARITY for g in self.GADGETS)

    def query_rand_len(self) -> int:
        return len(self.GADGETS) + (self.EVAL_OUTPUT_LEN if self.EVAL_OUTPUT_LEN > 1 else 0)

    def proof_len(self) -> int:
        return sum(
            g.ARITY + gadget_poly_len(g.DEGREE, wire_poly_len(calls))
            for g, calls in zip(self.GADGETS, self.GADGET_CALLS, strict=True)
        )

    def verifier_len(self) -> int:
        return 1 + sum(g.ARITY + 1 for g in self.GADGETS)


def _int(field: type[Field], value: Any, what: str, low: int, high: int) -> int:
    """`value` as an int in [low, high], else InvalidInput naming what and the range."""
    from qdsn.errors import InvalidInput

    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer from {low} to {high}, not {value!r}")
    return value


def encode_range_checked_int(field: type[Field], value: int, max_measurement: int) -> list[int]:
    """`value` as weighted bits: powers of two, the last weight making the total max_measurement."""
    bits = max_measurement.bit_length()
    rest_all_ones = 2 ** (bits - 1) - 1
    last_weight = max_measurement - rest_all_ones
    if value <= rest_all_ones:
        rest, last = value, 0
    else:
        rest, last = value - last_weight, 1
    return [(rest >> i) & 1 for i in range(bits - 1)] + [last]


def decode_range_checked_int(field: type[Field], encoded: list[int], max_measurement: int) -> int:
    """The (share of the) integer a weighted-bit encoding stands for; linear, so it works on shares."""
    bits = max_measurement.bit_length()
    last_weight = max_measurement - (2 ** (bits - 1) - 1)
    total = sum(bit << i for i, bit in enumerate(encoded[: bits - 1])) + last_weight * encoded[bits - 1]
    return total % field.MODULUS


class Count(Valid):
    """0 or 1: x·x − x = 0."""

    def __init__(self, field: type[Field]) -> None:
        self.field = field
        self.GADGETS = [Mul()]
        self.GADGET_CALLS = [1]
        self.MEAS_LEN = self.OUTPUT_LEN = self.EVAL_OUTPUT_LEN = 1
        self.JOINT_RAND_LEN = 0

    def encode(self, measurement: int) -> list[int]:
        return [_int(self.field, int(measurement) if isinstance(measurement, bool) else measurement, "a count", 0, 1)]

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        return [(gadgets[0].eval(self.field, [meas[0], meas[0]]) - meas[0]) % self.field.MODULUS]

    def truncate(self, meas: list[int]) -> list[int]:
        return meas

    def decode(self, output: list[int], num_measurements: int) -> int:
        return output[0]


class Sum(Valid):
    """An integer in [0, max_measurement], as weighted bits each checked by PolyEval(x² − x)."""

    def __init__(self, field: type[Field], max_measurement: int) -> None:
        if max_measurement < 1 or max_measurement >= field.MODULUS:
            raise ValueError("max_measurement must be positive and below the field's modulus")
        self.field = field
        self.max_measurement = max_measurement
        self.bits = max_measurement.bit_length()
        self.GADGETS = [PolyEval([0, -1, 1], self.bits)]
        self.GADGET_CALLS = [self.bits]
        self.MEAS_LEN = self.EVAL_OUTPUT_LEN = self.bits
        self.OUTPUT_LEN = 1
        self.JOINT_RAND_LEN = 0

    def encode(self, measurement: int) -> list[int]:
        value = _int(self.field, measurement, "a sum's measurement", 0, self.max_measurement)
        return encode_range_checked_int(self.field, value, self.max_measurement)

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        return [gadgets[0].eval(self.field, [b]) for b in meas]

    def truncate(self, meas: list[int]) -> list[int]:
        return [decode_range_checked_int(self.field, meas, self.max_measurement)]

    def decode(self, output: list[int], num_measurements: int) -> int:
        return output[0]


def _range_check(
    field: type[Field],
    meas: list[int],
    joint_rand: list[int],
    num_shares: int,
    chunk_length: int,
    calls: int,
    gadget: Gadget,
) -> int:
    """Σ_i ParallelSum over chunk i of (r_i^(j+1)·x)·(x − 1/num_shares): zero (w.h.p.) iff every x is 0 or 1."""
    mod = field.MODULUS
    shares_inv = field.inv_const(num_shares)
    out = 0
    for i in range(calls):
        r = joint_rand[i]
        r_power = r
        inputs = [0] * (2 * chunk_length)
        for j in range(chunk_length):
            index = i * chunk_length + j
            elem = meas[index] if index < len(meas) else 0
            inputs[2 * j] = r_power * elem % mod
            inputs[2 * j + 1] = (elem - shares_inv) % mod
            r_power = r_power * r % mod
        out += gadget.eval(field, inputs)
    return out % mod


class SumVec(Valid):
    """`length` integers each in [0, max_measurement], as weighted bits range-checked with ParallelSum(Mul)."""

    def __init__(self, field: type[Field], length: int, max_measurement: int, chunk_length: int) -> None:
        if length < 1 or chunk_length < 1 or max_measurement < 1:
            raise ValueError("length, max_measurement and chunk_length must be positive")
        self.field = field
        self.length = length
        self.max_measurement = max_measurement
        self.bits = max_measurement.bit_length()
        self.chunk_length = chunk_length
        self.GADGETS = [ParallelSum(Mul(), chunk_length)]
        self.GADGET_CALLS = [(length * self.bits + chunk_length - 1) // chunk_length]
        self.MEAS_LEN = length * self.bits
        self.OUTPUT_LEN = length
        self.EVAL_OUTPUT_LEN = 1
        self.JOINT_RAND_LEN = self.GADGET_CALLS[0]

    def encode(self, measurement: list[int]) -> list[int]:
        from qdsn.errors import InvalidInput

        if not isinstance(measurement, list | tuple) or len(measurement) != self.length:
            raise InvalidInput(f"a vector measurement must be a list of {self.length} integers")
        out: list[int] = []
        for i, v in enumerate(measurement):
            value = _int(self.field, v, f"element {i} of the measurement", 0, self.max_measurement)
            out += encode_range_checked_int(self.field, value, self.max_measurement)
        return out

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        return [
            _range_check(self.field, meas, joint_rand, num_shares, self.chunk_length, self.GADGET_CALLS[0], gadgets[0])
        ]

    def truncate(self, meas: list[int]) -> list[int]:
        b = self.bits
        return [
            decode_range_checked_int(self.field, meas[i * b : (i + 1) * b], self.max_measurement)
            for i in range(self.length)
        ]

    def decode(self, output: list[int], num_measurements: int) -> list[int]:
        return list(output)


class Histogram(Valid):
    """A bucket index in [0, length), one-hot encoded: every entry 0 or 1 and the entries sum to 1."""

    def __init__(self, field: type[Field], length: int, chunk_length: int) -> None:
        if length < 1 or chunk_length < 1:
            raise ValueError("length and chunk_length must be positive")
        self.field = field
        self.length = length
        self.chunk_length = chunk_length
        self.GADGETS = [ParallelSum(Mul(), chunk_length)]
        self.GADGET_CALLS = [(length + chunk_length - 1) // chunk_length]
        self.MEAS_LEN = self.OUTPUT_LEN = length
        self.EVAL_OUTPUT_LEN = 2
        self.JOINT_RAND_LEN = self.GADGET_CALLS[0]

    def encode(self, measurement: int) -> list[int]:
        index = _int(self.field, measurement, "a histogram bucket", 0, self.length - 1)
        out = [0] * self.length
        out[index] = 1
        return out

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        mod = self.field.MODULUS
        range_check = _range_check(
            self.field, meas, joint_rand, num_shares, self.chunk_length, self.GADGET_CALLS[0], gadgets[0]
        )
        sum_check = (sum(meas) - self.field.inv_const(num_shares)) % mod
        return [range_check, sum_check]

    def truncate(self, meas: list[int]) -> list[int]:
        return meas

    def decode(self, output: list[int], num_measurements: int) -> list[int]:
        return list(output)


class MultihotCountVec(Valid):
    """`length` booleans of which at most max_weight are true; the claimed weight is sent as weighted bits."""

    def __init__(self, field: type[Field], length: int, max_weight: int, chunk_length: int) -> None:
        if length < 1 or chunk_length < 1 or not 0 < max_weight <= length:
            raise ValueError("length and chunk_length must be positive and max_weight in [1, length]")
        if length >= field.MODULUS:
            raise ValueError("length is too large for the field")
        self.field = field
        self.bits_for_weight = max_weight.bit_length()
        self.length = length
        self.max_weight = max_weight
        self.chunk_length = chunk_length
        self.GADGETS = [ParallelSum(Mul(), chunk_length)]
        self.GADGET_CALLS = [(length + self.bits_for_weight + chunk_length - 1) // chunk_length]
        self.MEAS_LEN = length + self.bits_for_weight
        self.OUTPUT_LEN = length
        self.EVAL_OUTPUT_LEN = 2
        self.JOINT_RAND_LEN = self.GADGET_CALLS[0]

    def encode(self, measurement: list[bool]) -> list[int]:
        from qdsn.errors import InvalidInput

        if not isinstance(measurement, list | tuple) or len(measurement) != self.length:
            raise InvalidInput(f"a multi-hot measurement must be a list of {self.length} booleans")
        counts = [
            _int(self.field, int(x) if isinstance(x, bool) else x, f"entry {i}", 0, 1)
            for i, x in enumerate(measurement)
        ]
        weight = sum(counts)
        if weight > self.max_weight:
            raise InvalidInput(f"at most {self.max_weight} entries may be true, not {weight}")
        return counts + encode_range_checked_int(self.field, weight, self.max_weight)

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        mod = self.field.MODULUS
        range_check = _range_check(
            self.field, meas, joint_rand, num_shares, self.chunk_length, self.GADGET_CALLS[0], gadgets[0]
        )
        weight = sum(meas[: self.length])
        reported = decode_range_checked_int(self.field, meas[self.length :], self.max_weight)
        return [range_check, (weight - reported) % mod]

    def truncate(self, meas: list[int]) -> list[int]:
        return meas[: self.length]

    def decode(self, output: list[int], num_measurements: int) -> list[int]:
        return list(output)


class HigherDegree(Valid):
    """The draft's test circuit with a degree-3 gadget: x·(x−1)·(x−2) = 0, so 0, 1 or 2."""

    def __init__(self, field: type[Field]) -> None:
        self.field = field
        self.GADGETS = [PolyEval([0, 2, -3, 1], 1)]
        self.GADGET_CALLS = [1]
        self.MEAS_LEN = self.OUTPUT_LEN = self.EVAL_OUTPUT_LEN = 1
        self.JOINT_RAND_LEN = 0

    def encode(self, measurement: int) -> list[int]:
        return [_int(self.field, measurement, "a measurement", 0, 2)]

    def eval(self, meas: list[int], joint_rand: list[int], num_shares: int, gadgets: list[Gadget]) -> list[int]:
        return [gadgets[0].eval(self.field, [meas[0]])]

    def truncate(self, meas: list[int]) -> list[int]:
        return meas

    def decode(self, output: list[int], num_measurements: int) -> int:
        return output[0]


# ---- the FLP (§7.3) ------------------------------------------------------------------------------------


class FlpBBCGGI19:
    """prove / query / decide for a validity circuit."""

    def __init__(self, valid: Valid) -> None:
        self.valid = valid
        self.field = valid.field
        self.PROVE_RAND_LEN = valid.prove_rand_len()
        self.QUERY_RAND_LEN = valid.query_rand_len()
        self.JOINT_RAND_LEN = valid.JOINT_RAND_LEN
        self.MEAS_LEN = valid.MEAS_LEN
        self.OUTPUT_LEN = valid.OUTPUT_LEN
        self.PROOF_LEN = valid.proof_len()
        self.VERIFIER_LEN = valid.verifier_len()

    def encode(self, measurement: Any) -> list[int]:
        return self.valid.encode(measurement)

    def truncate(self, meas: list[int]) -> list[int]:
        return self.valid.truncate(meas)

    def decode(self, output: list[int], num_measurements: int) -> Any:
        return self.valid.decode(output, num_measurements)

    def prove(self, meas: list[int], prove_rand: list[int], joint_rand: list[int]) -> list[int]:
        """The proof: for each gadget its wire seeds, then its gadget polynomial."""
        valid, field = self.valid, self.field
        shims = []
        for g, calls in zip(valid.GADGETS, valid.GADGET_CALLS, strict=True):
            seeds, prove_rand = prove_rand[: g.ARITY], prove_rand[g.ARITY :]
            shims.append(ProveGadget(field, seeds, g, calls))
        valid.eval(meas, joint_rand, 1, shims)
        proof: list[int] = []
        for shim, calls in zip(shims, valid.GADGET_CALLS, strict=True):
            p = wire_poly_len(calls)
            proof += [w[0] for w in shim.wires]
            proof += shim.inner.eval_poly(field, shim.wires)[: gadget_poly_len(shim.DEGREE, p)]
        return proof

    def query(
        self, meas: list[int], proof: list[int], query_rand: list[int], joint_rand: list[int], num_shares: int
    ) -> list[int]:
        """The verifier (share): the reduced circuit output, then each gadget test's wire and gadget values."""
        valid, field = self.valid, self.field
        mod = field.MODULUS
        shims = []
        for g, calls in zip(valid.GADGETS, valid.GADGET_CALLS, strict=True):
            p = wire_poly_len(calls)
            seeds, proof = proof[: g.ARITY], proof[g.ARITY :]
            poly, proof = proof[: gadget_poly_len(g.DEGREE, p)], proof[gadget_poly_len(g.DEGREE, p) :]
            shims.append(QueryGadget(field, seeds, poly, g, calls))
        out = valid.eval(meas, joint_rand, num_shares, shims)
        if valid.EVAL_OUTPUT_LEN > 1:
            rand, query_rand = query_rand[: valid.EVAL_OUTPUT_LEN], query_rand[valid.EVAL_OUTPUT_LEN :]
            v = sum(r * o for r, o in zip(rand, out, strict=True)) % mod
        else:
            [v] = out
        verifier = [v]
        for shim, t in zip(shims, query_rand, strict=False):
            p = len(shim.wires[0])
            if pow(t, p, mod) == 1:
                raise ValueError("test point is a root of unity")
            verifier += poly_eval_batched(field, shim.wires, t)
            verifier += poly_eval_batched(field, [shim.poly], t)
        return verifier

    def decide(self, verifier: list[int]) -> bool:
        """Whether the (combined) verifier accepts: circuit output zero and every gadget test consistent."""
        if verifier[0] != 0:
            return False
        rest = verifier[1:]
        for g in self.valid.GADGETS:
            wires, rest = rest[: g.ARITY], rest[g.ARITY :]
            [check], rest = rest[:1], rest[1:]
            if g.eval(self.field, wires) != check:
                return False
        return True
