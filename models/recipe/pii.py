"""Synthetic sentences with PII-style entities, generated with faker (MIT)."""

from __future__ import annotations

import random
import re

TEMPLATES = [
    "Please send the signed contract to {email} before Friday.",
    "You can reach {person} on {phone} or by email at {email}.",
    "Wire the deposit to IBAN {iban} under the name {person}.",
    "{person} was born on {dob} and lives at {address}.",
    "The package will be delivered to {address}, {postcode}.",
    "Card number {card} was declined at {company} yesterday.",
    "Suspicious logins came from {ip} to the account {username}.",
    "Read the full report at {url} or contact {email}.",
    "Our office at {address} is open on weekdays; call {phone}.",
    "Patient {person}, date of birth {dob}, was admitted on Monday.",
    "The car with plate {plate} was parked outside {company}.",
    "Employee {person} (SSN {ssn}) joined {company} in {city}.",
    "Reset the password for {username} and notify {email}.",
    "Transfer confirmation: {iban} credited for {person}.",
    "Server {ip} served {url} to {username} from {city}.",
    "Contact: {person} | {phone} | {email} | {address}",
    "{company} moved its headquarters to {city} last spring.",
    "Ship the invoice to {person}, {address}, and charge card {card}.",
]

SLOT_LABELS = {
    "email": "email address", "phone": "phone number", "iban": "iban", "address": "street address",
    "dob": "date of birth", "card": "credit card number", "ip": "ip address", "url": "url",
    "postcode": "postal code", "username": "username", "plate": "license plate",
    "ssn": "social security number", "person": "person", "company": "company", "city": "city",
}


def _value(fake, slot: str) -> str:
    return {
        "email": lambda: _email(fake), "phone": fake.phone_number, "iban": fake.iban,
        "address": lambda: fake.street_address(), "dob": lambda: fake.date_of_birth().strftime(
            random.choice(["%d %B %Y", "%Y-%m-%d", "%m/%d/%Y"])),
        "card": fake.credit_card_number, "ip": fake.ipv4, "url": fake.url, "postcode": fake.postcode,
        "username": fake.user_name, "plate": fake.license_plate, "ssn": fake.ssn, "person": fake.name,
        "company": fake.company, "city": fake.city,
    }[slot]()


# faker's own e-mail domains are a handful of free-mail and example.* names; real addresses (and
# reserved test domains) end in anything, so the model must not learn a TLD list.
TLDS = ["com", "org", "net", "de", "fr", "co.uk", "io", "edu", "gov", "info", "eu", "example", "test", "ai",
        "app", "dev", "nl", "ch", "es", "it"]


def _email(fake) -> str:
    if random.random() < 0.4:
        return fake.email()
    local = random.choice([fake.user_name(), fake.first_name(), f"{fake.first_name()[0]}.{fake.last_name()}",
                           random.choice(["info", "support", "sales", "press", "hr", "billing", "contact", "it-help"])])
    local = re.sub(r"[^a-z0-9._-]", "", local.lower()) or "info"
    domain = "-".join(fake.domain_word() for _ in range(random.choice([1, 1, 2])))
    return f"{local}@{domain}.{random.choice(TLDS)}"


def generate(n: int, seed: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(text, [(char_start, char_end, label)]) pairs."""
    from faker import Faker

    Faker.seed(seed)
    random.seed(seed)
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    out = []
    for _ in range(n):
        template = random.choice(TEMPLATES)
        text, spans, pos = "", [], 0
        for m in re.finditer(r"\{(\w+)\}", template):
            text += template[pos:m.start()]
            value = _value(fake, m.group(1)).replace("\n", ", ")
            spans.append((len(text), len(text) + len(value), SLOT_LABELS[m.group(1)]))
            text += value
            pos = m.end()
        text += template[pos:]
        out.append((text, spans))
    return out
