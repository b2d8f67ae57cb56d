"""Built-in texts for `spanstream bench` when the user brings none: news-style English written
for this project (no corpus licence attached), as short events (one sentence) and paragraphs
(six consecutive sentences, ~120 words)."""

from __future__ import annotations

SENTENCES = (
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the European Union budget.",
    "Apple opened a new office in Austin, Texas, hiring 500 engineers from Google and Microsoft.",
    "The Nile flows through Egypt and Sudan before reaching the Mediterranean Sea.",
    "Serena Williams won her first Wimbledon title in 2002, beating her sister Venus.",
    "The World Health Organization warned on Monday that measles cases rose across Europe.",
    "Toyota recalled a million cars sold in Japan and Canada between 2018 and 2020.",
    "Marie Curie was awarded the Nobel Prize in Physics in 1903 together with Pierre Curie.",
    "NASA's Perseverance rover landed in Jezero Crater on Mars in February 2021.",
    "Microsoft completed its acquisition of Activision Blizzard in October 2023.",
    "Lionel Messi joined Inter Miami after two seasons with Paris Saint-Germain.",
    "The Bank of England raised interest rates by a quarter point to 5.25 percent on Thursday.",
    "Shares of Nvidia closed 4 percent higher in New York after the company reported record revenue.",
    "A magnitude 6.1 earthquake struck off the coast of Hokkaido early on Sunday, officials said.",
    "The city council of Lyon approved a plan to plant 20,000 trees along the Rhone by 2030.",
    "Doctors at Johns Hopkins Hospital tested the new malaria vaccine on 4,800 children in Kenya.",
    "Amazon said it would invest 10 billion dollars in data centres in Ohio over the next decade.",
    "The ministry of transport in Berlin announced a strike by train drivers for Wednesday morning.",
    "Novak Djokovic defeated Carlos Alcaraz in four sets to win the Australian Open in Melbourne.",
    "The European Central Bank kept its deposit rate at 4 percent, citing slowing inflation in Spain.",
    "Samsung Electronics unveiled a foldable phone at an event in Seoul attended by 3,000 guests.",
    "Heavy rain flooded parts of Jakarta, forcing 12,000 residents to leave their homes on Friday.",
    "The British Museum returned two bronze sculptures to Nigeria under an agreement signed in Abuja.",
    "Researchers at the University of Cambridge published a study on Antarctic sea ice in Nature.",
    "Volkswagen will build a battery plant near Valencia, creating about 3,000 jobs by 2026.",
    "President Lula da Silva visited Beijing in April to sign trade deals with Xi Jinping.",
    "The Louvre welcomed 8.7 million visitors last year, most of them from France and the United States.",
    "A fire at a warehouse in Rotterdam port destroyed goods worth an estimated 40 million euros.",
    "Taylor Swift's concert film earned 92 million dollars in North America on its opening weekend.",
    "The International Monetary Fund cut its growth forecast for Argentina to 2.8 percent in July.",
    "Ukrainian grain exports through Odesa resumed after a three-week pause, the port authority said.",
    "Airbus delivered 735 aircraft in 2023, ahead of Boeing for the fifth year in a row.",
    "The Supreme Court of India ordered Delhi to cut air pollution from construction sites by winter.",
    "Chef Massimo Bottura opened a soup kitchen in Modena with help from the Caritas charity.",
    "Spotify laid off 1,500 employees in December, about 17 percent of its staff in Stockholm and abroad.",
    "Wildfires in British Columbia burned more than two million hectares of forest this summer.",
    "The Golden State Warriors signed Chris Paul to a one-year contract worth 30 million dollars.",
)

PARAGRAPH_SENTENCES = 6


def short_texts() -> list[str]:
    return list(SENTENCES)


def paragraphs() -> list[str]:
    """Every run of six consecutive sentences (wrapping round), one paragraph each."""
    n = len(SENTENCES)
    return [" ".join(SENTENCES[(i + k) % n] for k in range(PARAGRAPH_SENTENCES)) for i in range(n)]
