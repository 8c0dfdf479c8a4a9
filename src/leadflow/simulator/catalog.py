"""Built-in reference data for simulated people and companies.

Names per region, countries with their time zones, telephone plans and locales, industries,
departments and titles, company-name parts. Everything is plain tuples so a lookup is cheap.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple


def ascii_slug(text: str) -> str:
    """Lowercase ASCII letters and digits only: "D'Angelo" -> "dangelo", "Müller" -> "muller"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


# Region name lists: several dozen first and last names each. Slugs are unique within a list,
# so (first, last) pairs of a list give distinct e-mail local parts.
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anglo": (
        _names(
            "James, Mary, John, Patricia, Robert, Jennifer, Michael, Linda, David, Elizabeth,"
            "William, Barbara, Richard, Susan, Joseph, Jessica, Thomas, Sarah, Christopher,"
            "Karen, Daniel, Emily, Matthew, Ashley, Anthony, Megan, Mark, Rachel, Andrew, Laura,"
            "Joshua, Amanda, Kevin, Nicole, Brian, Olivia, Ryan, Hannah, Jason, Grace, Ethan,"
            "Chloe, Noah, Sophie, Liam, Priya, Carlos, Mei, Omar, Aisha"
        ),
        _names(
            "Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Anderson, Taylor,"
            "Thomas, Moore, Martin, Jackson, Thompson, White, Harris, Clark, Lewis, Robinson,"
            "Walker, Young, Allen, King, Wright, Scott, Green, Baker, Adams, Nelson, Hill,"
            "Campbell, Mitchell, Roberts, Carter, Phillips, Evans, Turner, Parker, Collins,"
            "Edwards, Stewart, Morris, Murphy, Cook, Rogers, Patel, Nguyen, Garcia, Kim"
        ),
    ),
    "de": (
        _names(
            "Lukas, Anna, Leon, Laura, Felix, Julia, Jonas, Lena, Maximilian, Sarah, Paul, Lea,"
            "Tim, Hannah, Jan, Katharina, Niklas, Sophie, Tobias, Marie, Florian, Johanna,"
            "Sebastian, Lisa, Moritz, Clara, Philipp, Franziska, Alexander, Miriam, Stefan,"
            "Sabine, Thomas, Petra, Matthias, Claudia, Jürgen, Anke, Björn, Jörg"
        ),
        _names(
            "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz,"
            "Hoffmann, Koch, Richter, Bauer, Klein, Wolf, Schröder, Neumann, Schwarz,"
            "Zimmermann, Braun, Krüger, Hofmann, Hartmann, Lange, Schmitt, Werner, Krause,"
            "Meier, Lehmann, Schmid, Schulze, Maier, Köhler, Herrmann, König, Walter, Mayer,"
            "Huber, Kaiser, Fuchs"
        ),
    ),
    "fr": (
        _names(
            "Louis, Camille, Gabriel, Léa, Arthur, Manon, Jules, Chloé, Hugo, Inès, Lucas,"
            "Sarah, Adam, Jade, Raphaël, Louise, Nathan, Emma, Thomas, Alice, Antoine,"
            "Juliette, Maxime, Clémence, Nicolas, Pauline, Julien, Mathilde, Pierre, Claire,"
            "Alexandre, Margaux, Quentin, Elodie, Romain, Céline, Baptiste, Océane, François,"
            "Amélie"
        ),
        _names(
            "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau,"
            "Simon, Laurent, Lefebvre, Michel, Garcia, David, Bertrand, Roux, Vincent,"
            "Fournier, Morel, Girard, André, Lefèvre, Mercier, Dupont, Lambert, Bonnet,"
            "Fontaine, Martinez, Legrand, Garnier, Faure, Rousseau, Blanc, Guérin, Muller,"
            "Henry, Roussel, Perrin"
        ),
    ),
    "nl": (
        _names(
            "Daan, Emma, Sem, Julia, Lucas, Sophie, Levi, Tess, Finn, Anna, Milan, Fleur,"
            "Jesse, Sara, Thijs, Lotte, Bram, Eva, Ruben, Lisa, Lars, Iris, Stijn, Noor, Koen,"
            "Sanne, Joost, Femke, Sander, Anouk, Wouter, Maaike, Pieter, Ilse, Bas, Marieke"
        ),
        _names(
            "de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit,"
            "Meijer, de Boer, Mulder, de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen,"
            "Dekker, Brouwer, de Wit, Dijkstra, Smits, de Graaf, van der Meer, van der Linden,"
            "Kok, Jacobs, de Haan, Vermeulen, van den Heuvel, van der Veen, van den Broek,"
            "de Bruijn, Kuipers, van der Heijden"
        ),
    ),
    "es": (
        _names(
            "Hugo, Lucía, Martín, Sofía, Pablo, María, Daniel, Paula, Alejandro, Valeria,"
            "Álvaro, Carmen, Adrián, Julia, David, Marta, Mario, Laura, Diego, Sara, Javier,"
            "Elena, Sergio, Ana, Jorge, Cristina, Carlos, Irene, Raúl, Nuria, Iván, Rocío,"
            "Manuel, Silvia, Rubén, Beatriz, Andrés, Claudia, Miguel, Alba"
        ),
        _names(
            "García, Rodríguez, González, Fernández, López, Martínez, Sánchez, Pérez, Gómez,"
            "Martín, Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso,"
            "Gutiérrez, Navarro, Torres, Domínguez, Vázquez, Ramos, Gil, Ramírez, Serrano,"
            "Blanco, Molina, Morales, Suárez, Ortega, Delgado, Castro, Ortiz, Rubio, Marín,"
            "Sanz, Iglesias"
        ),
    ),
    "it": (
        _names(
            "Leonardo, Sofia, Francesco, Giulia, Alessandro, Aurora, Lorenzo, Alice, Mattia,"
            "Ginevra, Andrea, Emma, Gabriele, Giorgia, Riccardo, Beatrice, Tommaso, Chiara,"
            "Edoardo, Martina, Marco, Francesca, Luca, Elena, Matteo, Sara, Giovanni, Federica,"
            "Davide, Valentina, Simone, Silvia, Stefano, Paola, Paolo, Roberta, Fabio, Alessia,"
            "Nicola, Elisa"
        ),
        _names(
            "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco,"
            "Bruno, Gallo, Conti, De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti,"
            "Barbieri, Fontana, Santoro, Mariani, Rinaldi, Caruso, Ferrara, Galli, Martini,"
            "Leone, Longo, Gentile, Martinelli, Vitale, Lombardo, Serra, Coppola, De Santis,"
            "D'Angelo, Marchetti"
        ),
    ),
    "in": (
        _names(
            "Aarav, Priya, Vivaan, Ananya, Aditya, Diya, Arjun, Isha, Sai, Kavya, Rohan, Sneha,"
            "Rahul, Pooja, Vikram, Neha, Karan, Anjali, Amit, Riya, Siddharth, Meera, Nikhil,"
            "Divya, Varun, Shreya, Rajesh, Lakshmi, Suresh, Deepika, Arun, Nisha, Manish, Swati,"
            "Harsh, Aditi, Kunal, Tanvi, Gaurav, Pallavi"
        ),
        _names(
            "Sharma, Verma, Gupta, Singh, Kumar, Patel, Shah, Mehta, Iyer, Reddy, Nair, Rao,"
            "Joshi, Desai, Kulkarni, Menon, Pillai, Chopra, Malhotra, Kapoor, Bose, Banerjee,"
            "Chatterjee, Mukherjee, Das, Ghosh, Agarwal, Jain, Bhat, Hegde, Naidu, Saxena,"
            "Srivastava, Trivedi, Pandey, Mishra, Chauhan, Yadav, Krishnan, Subramanian"
        ),
    ),
    "br": (
        _names(
            "Miguel, Alice, Arthur, Helena, Heitor, Laura, Bernardo, Valentina, Théo, Maria,"
            "Davi, Sophia, Gabriel, Isabella, Pedro, Manuela, Lucas, Júlia, Matheus, Beatriz,"
            "Rafael, Mariana, Gustavo, Camila, Felipe, Larissa, Bruno, Fernanda, Thiago,"
            "Letícia, Rodrigo, Juliana, Leonardo, Amanda, Vinícius, Bianca, João, Carolina,"
            "Eduardo, Renata"
        ),
        _names(
            "Silva, Santos, Oliveira, Souza, Rodrigues, Ferreira, Alves, Pereira, Lima, Gomes,"
            "Costa, Ribeiro, Martins, Carvalho, Almeida, Lopes, Soares, Fernandes, Vieira,"
            "Barbosa, Rocha, Dias, Nascimento, Andrade, Moreira, Nunes, Marques, Machado,"
            "Mendes, Freitas, Cardoso, Ramos, Gonçalves, Santana, Teixeira, Araújo, Correia,"
            "Pinto, Campos, Cavalcanti"
        ),
    ),
}


class PhonePlan(NamedTuple):
    """A telephone number family: E.164 prefix, then `digits` random digits.

    `lead` restricts the first random digit (e.g. "2345" for exchanges that cannot start 0/1).
    """

    prefix: str
    digits: int
    lead: str = "0123456789"


class Zone(NamedTuple):
    """An IANA time zone of a country with the local numbers used there."""

    tz: str
    weight: float
    phones: tuple[PhonePlan, ...]


class Country(NamedTuple):
    code: str
    weight: float  # share of simulated leads
    region: str  # key of NAMES
    locales: tuple[str, ...]
    tld: str
    zones: tuple[Zone, ...]
    mobile: tuple[PhonePlan, ...]
    fit: float  # market attractiveness, an additive term of the fit logit


def _us(*codes: str) -> tuple[PhonePlan, ...]:
    return tuple(PhonePlan(f"+1{code}", 7, "23456789") for code in codes)


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US", 0.34, "anglo", ("en-US",), "com",
        (
            Zone("America/New_York", 0.48, _us("212", "646", "917", "617", "404", "305")),
            Zone("America/Chicago", 0.24, _us("312", "773", "214", "512", "713")),
            Zone("America/Denver", 0.08, _us("303", "720", "801")),
            Zone("America/Los_Angeles", 0.20, _us("415", "650", "408", "310", "206", "503")),
        ),
        (),
        0.6,
    ),
    Country(
        "CA", 0.06, "anglo", ("en-CA", "en-CA", "fr-CA"), "ca",
        (
            Zone("America/Toronto", 0.7, _us("416", "647", "613", "514")),
            Zone("America/Vancouver", 0.3, _us("604", "778")),
        ),
        (),
        0.4,
    ),
    Country(
        "GB", 0.10, "anglo", ("en-GB",), "co.uk",
        (Zone("Europe/London", 1.0, (PhonePlan("+44207", 7), PhonePlan("+44203", 7))),),
        (PhonePlan("+4474", 8, "012346789"), PhonePlan("+4477", 8, "12345")),
        0.5,
    ),
    Country(
        "DE", 0.09, "de", ("de-DE",), "de",
        (
            Zone(
                "Europe/Berlin", 1.0,
                (PhonePlan("+4930", 8, "23456789"), PhonePlan("+4989", 8, "23456789"),
                 PhonePlan("+4940", 8, "23456789"), PhonePlan("+4969", 8, "23456789")),
            ),
        ),
        (PhonePlan("+49151", 8), PhonePlan("+49176", 8)),
        0.4,
    ),
    Country(
        "FR", 0.06, "fr", ("fr-FR",), "fr",
        (Zone("Europe/Paris", 1.0, (PhonePlan("+331", 8, "4567"),)),),
        (PhonePlan("+336", 8, "1245678"),),
        0.2,
    ),
    Country(
        "NL", 0.04, "nl", ("nl-NL", "en-NL"), "nl",
        (Zone("Europe/Amsterdam", 1.0,
               (PhonePlan("+3120", 7, "23456789"), PhonePlan("+3110", 7, "23456789"))),),
        (PhonePlan("+316", 8, "12345"),),
        0.4,
    ),
    Country(
        "ES", 0.04, "es", ("es-ES",), "es",
        (Zone("Europe/Madrid", 1.0,
               (PhonePlan("+3491", 7, "234567"), PhonePlan("+3493", 7, "234567"))),),
        (PhonePlan("+346", 8),),
        0.0,
    ),
    Country(
        "IT", 0.04, "it", ("it-IT",), "it",
        (Zone("Europe/Rome", 1.0,
               (PhonePlan("+3902", 8, "23456789"), PhonePlan("+3906", 8, "23456789"))),),
        (PhonePlan("+3933", 8), PhonePlan("+3934", 8)),
        0.0,
    ),
    Country(
        "AU", 0.05, "anglo", ("en-AU",), "com.au",
        (
            Zone("Australia/Sydney", 0.45, (PhonePlan("+612", 8, "89"),)),
            Zone("Australia/Melbourne", 0.35, (PhonePlan("+613", 8, "89"),)),
            Zone("Australia/Brisbane", 0.12, (PhonePlan("+617", 8, "3"),)),
            Zone("Australia/Perth", 0.08, (PhonePlan("+618", 8, "9"),)),
        ),
        (PhonePlan("+614", 8, "0123"),),
        0.3,
    ),
    Country(
        "IN", 0.11, "in", ("en-IN",), "in",
        (Zone("Asia/Kolkata", 1.0,
               (PhonePlan("+9180", 8, "234"), PhonePlan("+9122", 8, "23456"))),),
        (PhonePlan("+919", 9), PhonePlan("+917", 9), PhonePlan("+918", 9)),
        -0.4,
    ),
    Country(
        "BR", 0.07, "br", ("pt-BR",), "com.br",
        (Zone("America/Sao_Paulo", 1.0, (PhonePlan("+55113", 7), PhonePlan("+55213", 7))),),
        (PhonePlan("+55119", 8, "6789"), PhonePlan("+55219", 8, "6789")),
        -0.3,
    ),
)  # fmt: skip
COUNTRY_BY_CODE = {country.code: country for country in COUNTRIES}


class Industry(NamedTuple):
    key: str
    weight: float  # share of accounts
    fit: float  # additive term of the fit logit
    suffixes: tuple[str, ...]
    revenue_per_employee: float  # USD


INDUSTRIES: tuple[Industry, ...] = (
    Industry("software", 0.22, 1.0,
             ("Software", "Labs", "Systems", "Technologies", "Cloud"), 260e3),
    Industry("fintech", 0.09, 0.9,
             ("Pay", "Capital", "Finance", "Financial", "Ledger"), 320e3),
    Industry("ecommerce", 0.07, 0.6,
             ("Commerce", "Shop", "Direct", "Marketplace", "Online"), 280e3),
    Industry("healthcare", 0.09, 0.5,
             ("Health", "Medical", "Care", "Clinics", "Bio"), 180e3),
    Industry("manufacturing", 0.10, 0.4,
             ("Industries", "Manufacturing", "Works", "Components", "Machines"), 240e3),
    Industry("retail", 0.08, 0.4,
             ("Retail", "Stores", "Brands", "Outfitters", "Goods"), 200e3),
    Industry("logistics", 0.06, 0.3,
             ("Logistics", "Freight", "Shipping", "Transport", "Supply"), 210e3),
    Industry("media", 0.05, 0.1,
             ("Media", "Studios", "Publishing", "Digital", "News"), 190e3),
    Industry("professional_services", 0.07, 0.0,
             ("Consulting", "Partners", "Advisors", "Associates", "Group"), 170e3),
    Industry("education", 0.06, -1.2,
             ("Academy", "Learning", "Institute", "College", "Education"), 90e3),
    Industry("government", 0.05, -1.0,
             ("County", "Municipality", "Council", "Transit Authority", "Public Services"), 110e3),
    Industry("non_profit", 0.06, -1.2,
             ("Foundation", "Trust", "Alliance", "Society", "Fund"), 80e3),
)  # fmt: skip
TARGET_INDUSTRIES = frozenset(i.key for i in INDUSTRIES if i.fit > 0)


class Department(NamedTuple):
    key: str
    weight: float
    fit: float
    label: str  # as in "VP of <label>"
    c_level: str
    managers: tuple[str, ...]
    senior: str
    entry: str


DEPARTMENTS: tuple[Department, ...] = (
    Department("marketing", 0.30, 0.5, "Marketing", "Chief Marketing Officer",
               ("Marketing Manager", "Demand Generation Manager", "Growth Marketing Manager"),
               "Senior Marketing Specialist", "Marketing Coordinator"),
    Department("sales", 0.18, 0.35, "Sales", "Chief Revenue Officer",
               ("Sales Manager", "Regional Sales Manager"),
               "Senior Account Executive", "Sales Development Representative"),
    Department("revops", 0.08, 0.8, "Revenue Operations", "Chief Revenue Officer",
               ("Revenue Operations Manager", "Marketing Operations Manager"),
               "Senior RevOps Analyst", "RevOps Analyst"),
    Department("engineering", 0.17, -0.1, "Engineering", "Chief Technology Officer",
               ("Engineering Manager", "Data Engineering Manager"),
               "Senior Software Engineer", "Software Engineer"),
    Department("product", 0.07, 0.1, "Product", "Chief Product Officer",
               ("Product Manager", "Group Product Manager"),
               "Senior Product Manager", "Associate Product Manager"),
    Department("finance", 0.05, -0.2, "Finance", "Chief Financial Officer",
               ("Finance Manager", "Controller"),
               "Senior Financial Analyst", "Financial Analyst"),
    Department("it", 0.06, 0.0, "IT", "Chief Information Officer",
               ("IT Manager", "Systems Manager"),
               "Senior Systems Administrator", "IT Support Specialist"),
    Department("hr", 0.04, -0.7, "People", "Chief People Officer",
               ("HR Manager", "Talent Acquisition Manager"),
               "Senior HR Generalist", "HR Coordinator"),
    Department("operations", 0.05, -0.2, "Operations", "Chief Operating Officer",
               ("Operations Manager", "Program Manager"),
               "Senior Operations Analyst", "Operations Associate"),
)  # fmt: skip

# seniority -> (share among professionals, role, additive fit term)
SENIORITIES: tuple[tuple[str, float, str, float], ...] = (
    ("c_level", 0.04, "executive", 0.8),
    ("vp", 0.07, "executive", 1.0),
    ("director", 0.13, "manager", 0.9),
    ("manager", 0.24, "manager", 0.5),
    ("senior", 0.20, "individual_contributor", 0.1),
    ("entry", 0.27, "individual_contributor", -0.3),
    ("intern", 0.05, "individual_contributor", -1.0),
)
JOB_SEEKER_TITLES = (
    "Open to Work",
    "Recent Graduate",
    "Career Changer",
    "Marketing Graduate",
    "Aspiring Product Manager",
)
STUDENT_TITLES = ("Student", "MBA Candidate", "Graduate Student", "Research Assistant")

FREE_MAIL = (
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
)
FREE_MAIL_LOCAL = {
    "DE": ("gmx.de", "web.de"),
    "FR": ("orange.fr", "free.fr"),
    "IT": ("libero.it",),
    "GB": ("yahoo.co.uk", "btinternet.com"),
    "BR": ("uol.com.br", "bol.com.br"),
    "IN": ("rediffmail.com",),
}
FREE_MAIL_DOMAINS = frozenset(FREE_MAIL).union(*FREE_MAIL_LOCAL.values())

# Company names are "<head><tail> <industry suffix>" ("Northwind Health"); the pairs are unique.
NAME_HEADS = _names(
    "North, Blue, Bright, Silver, Cedar, Iron, Quantum, Pixel, Summit, Harbor, Atlas, Nova, Red,"
    "Green, Granite, River, Sky, Sun, Star, Maple, Oak, Pine, Golden, Crystal, Swift, Clear,"
    "True, Prime, Vector, Delta, Apex, Terra, Aero, Hyper, Omni, Lumen, Echo, Orbit, Polar,"
    "Coral, Falcon, Eagle, Fox, Wolf, Bear, Lynx, Copper, Amber, Willow, Harvest"
)
NAME_TAILS = _names(
    "wind, stone, field, bridge, path, wave, light, point, gate, leaf, core, forge, works, line,"
    "stack, mark, scale, shift, port, loop, yard, peak, wise, bit, cloud, grid, hub, flow,"
    "sense, tree, water, rock, ridge, brook, lane, dale, wood, crest, spring, view"
)
NAME_QUALIFIERS = _names(
    "Global, Group, International, Digital, Holdings, Partners, Networks, Solutions, Ventures,"
    "Dynamics, United, Europe, Americas, Pacific, Atlantic, Interactive, Enterprises, Worldwide,"
    "Collective, Innovations"
)
UNIVERSITY_PLACES = _names(
    "Westbrook, Northfield, Lakeside, Ashford, Riverton, Kingsbridge, Fairhaven, Brookhaven,"
    "Eastwood, Millbrook, Oakridge, Silverlake, Highgate, Stonebridge, Clearwater"
)
UNIVERSITY_DOMAIN = {
    "US": "{}.edu",
    "CA": "{}.ca",
    "GB": "{}.ac.uk",
    "AU": "{}.edu.au",
    "DE": "uni-{}.de",
    "IN": "{}.ac.in",
    "BR": "{}.edu.br",
}

USER_AGENTS_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Safari/537.36 Edg/127.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36",
)
USER_AGENTS_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Mobile Safari/537.36",
)
