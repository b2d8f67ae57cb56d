"""A fixed probe set: the texts on which an int8 graph's entities are compared with its fp32
reference when the model loads (``ModelInfo.int8_agreement``, shown by ``/v1/models``)."""

from __future__ import annotations

LABELS = ("person", "organization", "location", "date", "money", "product", "event")

TEXTS = (
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the European Union budget.",
    "Apple opened a new office in Austin, Texas, hiring 500 engineers from Google and Microsoft.",
    "The Nile flows through Egypt and Sudan before reaching the Mediterranean Sea.",
    "Serena Williams won her first Wimbledon title in 2002, beating her sister Venus.",
    "Toyota recalled 1.2 million Corolla cars sold between 2018 and 2020 in Japan and Canada.",
    "On 4 July 1776 the Continental Congress adopted the Declaration of Independence in Philadelphia.",
    "Python 3.12 was released by the Python Software Foundation in October 2023.",
    "The Bank of England raised interest rates to 5.25 percent, the highest level since 2008.",
    "Lionel Messi signed with Inter Miami after leaving Paris Saint-Germain in June.",
    "Microsoft acquired Activision Blizzard for $68.7 billion after approval by regulators.",
    "NASA's Perseverance rover landed in Jezero Crater on Mars in February 2021.",
    "Marie Curie was the first woman to win a Nobel Prize, in physics in 1903.",
    "Samsung unveiled the Galaxy S24 smartphone at an event in San Jose, California.",
    "The patient was prescribed 20 mg of atorvastatin daily by Dr. Patel at St Mary's Hospital.",
    "Taylor Swift's Eras Tour grossed more than $1 billion across North America.",
    "Volkswagen invested €2 billion in a battery plant near Salzgitter, Lower Saxony.",
    "The United Nations General Assembly meets every September in New York City.",
    "Hurricane Katrina struck New Orleans in August 2005, flooding 80 percent of the city.",
    "Kenya's Eliud Kipchoge ran the Berlin Marathon in 2:01:09, a world record.",
    "Shakespeare wrote Hamlet around 1600 while working at the Globe Theatre in London.",
    "Zoë Saldaña and Björk attended the première in São Paulo last Friday.",
    "Tesla shares fell 12% after Elon Musk announced a delay to the Cybertruck.",
    "The World Health Organization warned that measles cases rose by 30% in Europe last year.",
    "Pfizer and BioNTech developed a COVID-19 vaccine within a year, said a spokesperson in Mainz.",
    "just landed in tokyo, meeting sarah from sony tomorrow at 9am",
    "IBM and Red Hat announced a partnership with the University of Tokyo on quantum computing.",
    "Manchester United signed the Danish striker Rasmus Højlund from Atalanta for £64 million.",
    "The Louvre in Paris displays the Mona Lisa by Leonardo da Vinci.",
    "Amazon Web Services suffered an outage in its us-east-1 region on Monday morning.",
    "Mozart composed The Magic Flute shortly before his death in Vienna in 1791.",
    "The European Central Bank is headquartered in Frankfurt, Germany, and led by Christine Lagarde.",
    "Rust and Go are popular programming languages for building network services at Cloudflare.",
)
