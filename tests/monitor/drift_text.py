"""Synthetic, offline text for drift tests and bench/drift_detection.py: templated questions over
distinct topics (and two other languages), seeded so a sample is reproducible."""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "billing": (
        ["Why was I charged {amount} twice on my {card} this {period}?",
         "How do I get a refund for the {plan} plan I cancelled last {period}?",
         "My invoice shows {amount} but my {plan} subscription should cost less, can you check?",
         "Can I change the {card} used for my {plan} plan billing?",
         "I was billed {amount} after my free trial ended, how do I dispute the charge?",
         "Where can I download the invoice for my {plan} subscription from last {period}?"],
        {"amount": ["$12", "$49", "$99", "$240", "€30", "$7.50"], "card": ["visa card", "mastercard", "debit card",
                                                                         "company card", "paypal account"],
         "period": ["month", "week", "quarter", "year"], "plan": ["basic", "pro", "team", "enterprise", "family"]},
    ),
    "cooking": (
        ["How long should I roast {food} at {temp} degrees?",
         "What can I use instead of {ingredient} when baking {dish}?",
         "Give me a quick {dish} recipe that uses {ingredient} and {food}.",
         "Why does my {dish} come out dry when I cook it with {ingredient}?",
         "Is it safe to freeze leftover {dish} made with {food}?",
         "Which spices go well with {food} in a {dish}?"],
        {"food": ["chicken thighs", "salmon", "potatoes", "a pork shoulder", "carrots", "tofu"],
         "temp": ["180", "200", "220", "350", "400"], "ingredient": ["butter", "eggs", "buttermilk", "yeast",
                                                                   "heavy cream", "brown sugar"],
         "dish": ["banana bread", "lasagna", "curry", "pancakes", "stew", "focaccia"]},
    ),
    "travel": (
        ["Do I need a visa to visit {country} for {days} days?",
         "What is the cheapest way to get from the airport to downtown {city}?",
         "Can I change my flight to {city} without paying a fee?",
         "Which neighbourhood in {city} is best for a {days}-day stay with kids?",
         "My luggage was lost on the flight to {country}, what should I do?",
         "How early should I arrive at the airport for an international flight to {city}?"],
        {"country": ["Japan", "Brazil", "Canada", "Morocco", "Norway", "Vietnam"],
         "city": ["Lisbon", "Tokyo", "Chicago", "Buenos Aires", "Istanbul", "Seoul"],
         "days": ["3", "5", "10", "14", "30"]},
    ),
    "medical": (
        ["Is it normal to have {symptom} after taking {drug} for {days} days?",
         "Can I take {drug} together with {drug2} for {symptom}?",
         "What dose of {drug} is safe for a child with {symptom}?",
         "Should I see a doctor if my {symptom} lasts more than {days} days?",
         "What are the side effects of {drug} when used for {symptom}?"],
        {"symptom": ["a headache", "nausea", "a sore throat", "back pain", "a rash", "a fever"],
         "drug": ["ibuprofen", "paracetamol", "amoxicillin", "an antihistamine", "aspirin"],
         "drug2": ["ibuprofen", "paracetamol", "vitamin C", "melatonin"], "days": ["2", "3", "5", "7"]},
    ),
}

FOREIGN: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "fr": (
        ["Pourquoi ai-je été facturé {amount} deux fois ce {period} sur ma carte bancaire ?",
         "Comment obtenir un remboursement pour l'abonnement que j'ai résilié le {period} dernier ?",
         "Ma facture indique {amount} mais mon abonnement devrait coûter moins cher, pouvez-vous vérifier ?",
         "Où puis-je télécharger la facture de mon abonnement du {period} dernier ?"],
        {"amount": ["12 €", "49 €", "99 €", "240 €"], "period": ["mois", "trimestre"]},
    ),
    "es": (
        ["¿Por qué me cobraron {amount} dos veces este {period} en mi tarjeta?",
         "¿Cómo puedo obtener un reembolso del plan que cancelé el {period} pasado?",
         "Mi factura muestra {amount} pero mi suscripción debería costar menos, ¿pueden revisarla?",
         "¿Dónde puedo descargar la factura de mi suscripción del {period} pasado?"],
        {"amount": ["12 €", "49 €", "99 €", "240 €"], "period": ["mes", "año"]},
    ),
}


def sentence(topic: str, rng: random.Random) -> str:
    templates, slots = TOPICS.get(topic) or FOREIGN[topic]
    tpl = rng.choice(templates)
    return tpl.format(**{k: rng.choice(v) for k, v in slots.items()})


def mixed(n: int, topics: dict[str, float], seed: int) -> list[str]:
    """``n`` texts, each topic drawn with its weight (``{"billing": 0.7, "travel": 0.3}``)."""
    rng = random.Random(seed)
    names, weights = list(topics), list(topics.values())
    return [sentence(rng.choices(names, weights)[0], rng) for _ in range(n)]


def answer(question: str, rng: random.Random, *, long: bool = False) -> str:
    """A plausible reply; ``long`` ones are several times longer."""
    base = rng.choice(["Thanks for reaching out. ", "Good question. ", "Happy to help. ", ""])
    body = f"Here is what I found about your question: {question.lower()}"
    extra = (" Let me walk you through every step in detail, including the exceptions, the fees that may apply, "
             "the documents you will need and what to do if something goes wrong along the way." * rng.randint(3, 5)
             if long else "")
    return base + body + extra
